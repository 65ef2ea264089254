"""Makes the SentencePiece fixtures Herd's tokenizer tests read (run once
with `pip install sentencepiece`; the outputs are checked in):

  spm-small.model      a small BPE model with byte fallback, trained here on
                       the start of Tiny Shakespeare (Herd's own test model)
  spm-cases.json       texts and the ids SentencePiece itself gives them,
                       for Llama 2's tokenizer.model and for spm-small.model

    /tmp/torchenv/bin/python Tests/Data/make_spm_fixtures.py
"""
import io, json, os
import sentencepiece as spm

here = os.path.dirname(os.path.abspath(__file__))
shared = os.path.join(here, "..", "..", "..", "shared", "data")
text = open(os.path.join(shared, "tinyshakespeare.txt"), encoding="utf-8").read()[:200_000]
model = io.BytesIO()
spm.SentencePieceTrainer.train(sentence_iterator=iter(text.split("\n")), model_writer=model, model_type="bpe",
                               vocab_size=400, byte_fallback=True, character_coverage=1.0,
                               add_dummy_prefix=True, remove_extra_whitespaces=False,
                               normalization_rule_name="identity", bos_id=1, eos_id=2, unk_id=0)
open(os.path.join(here, "spm-small.model"), "wb").write(model.getvalue())

texts = [
    "", "Hello world", "Hello, world!", " leading space", "trailing space ", "two  spaces", "tabs\tand\nnewlines\n",
    "    indented code: for i in range(10): print(i)", "def f(x):\n    return x ** 2  # square",
    "Numbers: 3.14159, 2,718, 1e-10, 12345678901234567890", "Café naïve résumé façade Ångström",
    "日本語のテキストと中文文本", "emoji 🦙🚀 and ❤️‍🔥", "Straße, Ελληνικά, русский, עברית, العربية",
    "ROMEO:\nBut, soft! what light through yonder window breaks?", "<s> not a control token </s>",
    "a" * 50, "  ", "\u2581 already a marker", "mixed\r\nline endings\r",
]
cases = {}
for name, path in [("llama2", os.path.join(shared, "llama2-tokenizer.model")), ("small", os.path.join(here, "spm-small.model"))]:
    sp = spm.SentencePieceProcessor(model_file=path)
    cases[name] = [{"text": t, "ids": sp.encode(t), "decoded": sp.decode(sp.encode(t))} for t in texts]
json.dump(cases, open(os.path.join(here, "spm-cases.json"), "w"), ensure_ascii=False, indent=0)
print({k: sum(len(c["ids"]) for c in v) for k, v in cases.items()})
