"""The SentencePiece library's own encoder on the documents Herd's bench
encodes (Tiny Shakespeare cut at blank lines), one thread: prints MB/s
as JSON for `herd bench` to set beside its own.

    python bench/sentencepiece_encode.py MODEL CORPUS
"""
import json, sys, time
import sentencepiece as spm

model, corpus = sys.argv[1], sys.argv[2]
sp = spm.SentencePieceProcessor(model_file=model)
text = open(corpus, encoding="utf-8").read()
docs = [d for d in text.split("\n\n") if d]
size = sum(len(d.encode("utf-8")) for d in docs)
# The faster of one batched call on one thread and a call per document
# (the batch avoids Python's per-call cost; the loop its list building).
best, tokens = float("inf"), 0
for _ in range(3):
    start = time.perf_counter()
    tokens = sum(len(ids) for ids in sp.encode(docs, num_threads=1))
    best = min(best, time.perf_counter() - start)
    start = time.perf_counter()
    for d in docs:
        sp.encode(d)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"bytes": size, "tokens": tokens, "mb_per_s": size / best / 1e6, "version": spm.__version__}))
