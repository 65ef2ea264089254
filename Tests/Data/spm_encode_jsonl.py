"""The SentencePiece library's ids for every document of JSON-lines files
(plain, .gz or .zst) and plain-text files, with BOS and EOS around each —
what `herd data prepare` must write. Prints one JSON list per document.

    python Tests/Data/spm_encode_jsonl.py MODEL FILE...
"""
import gzip, io, json, subprocess, sys
import sentencepiece as spm

sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
for path in sys.argv[2:]:
    if path.endswith(".zst"):
        raw = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    elif path.endswith(".gz"):
        raw = gzip.open(path, "rb").read()
    else:
        raw = open(path, "rb").read()
    text = raw.decode("utf-8")
    docs = [json.loads(l)["text"] for l in text.split("\n") if l.strip()] if ".jsonl" in path else [text]
    for d in docs:
        if d:
            print(json.dumps([sp.bos_id()] + sp.encode(d) + [sp.eos_id()]))
