"""Reader training step time: the base model's attention dropout against ``--attention-dropout 0``.

One process, two copies of the reader, their steps interleaved (A, B, A, B, ...): each step is what
``train-reader`` runs per batch (forward with the span loss, backward, AdamW) at batch 16 x 384 (the
longest windows), bf16 autocast where the CPU has it. Wall time per step and the CPU time split into
user and system (system time is mostly page faults of freshly mapped memory: the attention weight
matrices of the unfused path).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from common import ROOT, print_figures, save


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(ROOT / "models" / "reader"))
    ap.add_argument("--steps", type=int, default=5, help="measured steps per variant (after one warm-up step each)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--length", type=int, default=384)
    ap.add_argument("--name", default="train_step")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForQuestionAnswering

    from articleqa.runtime import bf16_is_fast

    torch.manual_seed(0)
    bf16 = bf16_is_fast()
    variants = {}
    for name, options in (
        ("base model's attention dropout", {}),
        ("--attention-dropout 0", {"attention_probs_dropout_prob": 0.0}),
    ):
        model = AutoModelForQuestionAnswering.from_pretrained(
            args.model, local_files_only=True, dtype=torch.float32, **options
        )
        model.train()
        variants[name] = {
            "model": model,
            "optimizer": torch.optim.AdamW(model.parameters(), lr=1e-5),
            "dropout": model.config.attention_probs_dropout_prob,
            "wall": [],
            "user": [],
            "system": [],
        }
    b, n = args.batch_size, args.length
    ids = torch.randint(1000, 30000, (b, n))
    mask = torch.ones(b, n, dtype=torch.long)
    mask[:, int(n * 0.8) :] = 0  # some padding, as in a batch of windows
    types = torch.zeros(b, n, dtype=torch.long)
    types[:, n // 10 : int(n * 0.8)] = 1
    starts = torch.randint(n // 10, int(n * 0.8) - 4, (b,))

    def step(v: dict) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = v["model"](
                input_ids=ids,
                attention_mask=mask,
                token_type_ids=types,
                start_positions=starts,
                end_positions=starts + 3,
            )
        out.loss.backward()
        v["optimizer"].step()
        v["optimizer"].zero_grad(set_to_none=True)

    for v in variants.values():
        step(v)  # warm-up
    for _ in range(args.steps):
        for v in variants.values():
            c0, t0 = os.times(), time.perf_counter()
            step(v)
            t1, c1 = time.perf_counter(), os.times()
            v["wall"].append(t1 - t0)
            v["user"].append(c1.user - c0.user)
            v["system"].append(c1.system - c0.system)
    rows = {
        name: {
            "attention_dropout": v["dropout"],
            "s_per_step": statistics.median(v["wall"]),
            "user_s": statistics.median(v["user"]),
            "system_s": statistics.median(v["system"]),
        }
        for name, v in variants.items()
    }
    base, fused = rows.values()
    result = {
        "model": args.model,
        "bf16": bf16,
        "batch": [b, n],
        "steps": args.steps,
        "variants": rows,
        "speedup": base["s_per_step"] / fused["s_per_step"],
        "torch_threads": torch.get_num_threads(),
    }
    save(args.name, result)
    print_figures(
        [f"training step, batch {b} x {n}, bf16 autocast {bf16}, median of {args.steps} interleaved steps:"]
        + [
            f"  {name} ({r['attention_dropout']}): {r['s_per_step']:.2f} s/step (user {r['user_s']:.2f} s, system {r['system_s']:.2f} s)"
            for name, r in rows.items()
        ]
        + [f"  speed-up {result['speedup']:.2f}x"]
    )
    return result


if __name__ == "__main__":
    main()
