"""Baseline for `make bench`: the same Llama shapes trained with PyTorch and
transformers' LlamaForCausalLM on this machine (AdamW, grad clipping, fp32),
timed the way `herd bench` times Herd: median of N steps after warmup.

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch transformers
    /tmp/torchenv/bin/python bench/pytorch_llama.py

Not part of `make test`: it needs PyTorch, which Herd does not.
"""
import argparse, statistics, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

CASES = {
    # name: (dim, layers, heads, kv_heads, ffn, context, batch) — vocab 65 as in herd bench
    "shakespeare-char": (128, 4, 4, 4, 352, 64, 12),
    "small-512": (512, 8, 8, 8, 1376, 256, 8),
}


def run(name, steps, warmup):
    dim, layers, heads, kv, ffn, ctx, batch = CASES[name]
    cfg = LlamaConfig(vocab_size=65, hidden_size=dim, intermediate_size=ffn,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv, max_position_embeddings=ctx,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                      attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-5, weight_decay=0.1)
    x = torch.randint(0, 65, (batch, ctx))
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    params = sum(p.numel() for p in model.parameters())
    print(f"pytorch {name} ({params} params, batch {batch} x {ctx}): "
          f"{batch * ctx / med:.0f} tokens/s, {med * 1000:.1f} ms/step")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--model", action="append")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name in a.model or CASES:
        run(name, a.steps, a.warmup)
