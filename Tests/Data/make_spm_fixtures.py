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
# The Llama 2 chat format, built as Meta's llama/generation.py chat_completion does.
sp = spm.SentencePieceProcessor(model_file=os.path.join(shared, "llama2-tokenizer.model"))
def meta_chat(dialog):
    B_INST, E_INST, B_SYS, E_SYS = "[INST]", "[/INST]", "<<SYS>>\n", "\n<</SYS>>\n\n"
    if dialog[0]["role"] == "system":
        dialog = [{"role": dialog[1]["role"], "content": B_SYS + dialog[0]["content"] + E_SYS + dialog[1]["content"]}] + dialog[2:]
    toks = []
    for p, a in zip(dialog[::2], dialog[1::2]):
        toks += [sp.bos_id()] + sp.encode(f"{B_INST} {(p['content']).strip()} {E_INST} {(a['content']).strip()} ") + [sp.eos_id()]
    if dialog[-1]["role"] == "user":
        toks += [sp.bos_id()] + sp.encode(f"{B_INST} {(dialog[-1]['content']).strip()} {E_INST}")
    return toks
dialogs = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Always answer with emojis."}, {"role": "user", "content": "How do I get to the airport?"}],
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": " Hello! How can I help? "},
     {"role": "user", "content": "Tell me a joke.\n"}, {"role": "assistant", "content": "Why did the llama cross the road?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"},
     {"role": "user", "content": "And 2+2?"}],
]
cases["chat"] = [{"dialog": d, "ids": meta_chat(d)} for d in dialogs]
json.dump(cases, open(os.path.join(here, "spm-cases.json"), "w"), ensure_ascii=False, indent=0)
print({k: sum(len(c["ids"]) for c in v) for k, v in cases.items()})
