"""Makes the Hugging Face fixtures Herd's interop tests read (run once with
torch and transformers installed; the outputs are checked in):

  hf-tiny-llama/        a small LlamaForCausalLM with grouped-query attention,
                        saved by transformers' save_pretrained (fp32 safetensors)
  hf-tiny-llama-bf16/   the same weights saved in bfloat16
  hf-tiny-llama.json    the prompt, transformers' logits for it, and its
                        greedy continuation

    /tmp/torchenv/bin/python Tests/Data/make_hf_fixtures.py
"""
import json, os
import torch
from transformers import LlamaConfig, LlamaForCausalLM

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                  initializer_range=0.2, bos_token_id=1, eos_token_id=2)
model = LlamaForCausalLM(cfg).float().eval()
with torch.no_grad():   # norm gains away from 1, so they matter
    for name, p in model.named_parameters():
        if "norm" in name:
            p.copy_(1 + 0.3 * torch.randn_like(p))
model.save_pretrained(os.path.join(here, "hf-tiny-llama"), safe_serialization=True)

prompt = [1, 72, 101, 114, 100]
ids = torch.tensor([prompt])
with torch.no_grad():
    logits = model(ids).logits[0].tolist()
    out = model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=0)[0].tolist()
# Last: converting to bfloat16 in place rounds the weights.
model.to(torch.bfloat16).save_pretrained(os.path.join(here, "hf-tiny-llama-bf16"), safe_serialization=True)
json.dump({"prompt": prompt, "logits": logits, "greedy": out[len(prompt):]},
          open(os.path.join(here, "hf-tiny-llama.json"), "w"))
print("greedy:", out[len(prompt):])
