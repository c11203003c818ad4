"""Where one update's time goes on this machine: torch.profiler over N updates of MODEL with the
benchmark's configuration, the operators grouped by what they are for.

    python scripts/profile_step.py --model transformer --dataset ../shared/data/multi30k --set train.precision=bf16
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from seq2seq.batching import token_batches
from seq2seq.config import DEFAULT_DATASET, load_config, parse_set
from seq2seq.corpus import prepare
from seq2seq.device import pick_device, precision_label
from seq2seq.models.build import build_model
from seq2seq.update import Update

# Operator name fragments -> what they are for, first match wins (top-level operators only).
# LayerNorm comes before the optimizer, whose clipping computes norms too (foreach_norm,
# linalg_vector_norm): a bare "norm" would count layer_norm as the optimizer's.
GROUPS = [
    ("layer norm", ("layer_norm",)),
    ("optimizer", ("adam", "clip_grad", "foreach", "linalg_vector_norm")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
    ("matmul", ("linear", "addmm", "matmul", "bmm", "mm", "baddbmm")),
    ("attention", ("scaled_dot_product", "softmax", "_flash", "attention")),
    ("recurrence", ("rnn", "lstm", "gru", "_thnn")),
    ("layout", ("copy_", "to", "cat", "stack", "index", "embedding", "gather", "pad", "contiguous", "clone")),
]


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="transformer")
    ap.add_argument("--updates", type=int, default=5)
    ap.add_argument("--dataset", default=os.environ.get("SEQ2SEQ_DATASET", DEFAULT_DATASET))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--top", type=int, default=15, help="also list the N most expensive operators")
    args = ap.parse_args()
    cfg = load_config(model=args.model, overrides={"data.dataset": args.dataset, "train.batch_tokens": 4096,
                                                   "data.max_train_pairs": 5000, "train.device": "cpu",
                                                   **parse_set(args.overrides)})
    device = pick_device("cpu")
    corpus, tok = prepare(cfg, lambda msg: None)
    model = build_model(cfg.model, tok.vocab_size).to(device).train()
    update = Update(cfg.train, model, device)
    src_lens, tgt_lens = corpus.lengths()
    batches = token_batches(src_lens, tgt_lens, cfg.train.batch_tokens, cfg.train.seed, 0)[:args.updates + 2]
    for idx in batches[:2]:  # warm up allocator and kernels
        update(corpus.batch(idx), update.lr(0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for idx in batches[2:]:
            update(corpus.batch(idx), update.lr(0)).read()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares: dict[str, float] = defaultdict(float)
    for e in events:
        shares[group_of(e.key)] += e.self_cpu_time_total
    print(f"{args.model}, {precision_label(model, update.precision, device)}, {args.updates} updates, "
          f"{total / 1e3 / args.updates:.0f} ms each (operator self time, {torch.get_num_threads()} threads)")
    for group, t in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"  {group:<11} {100 * t / total:5.1f}%")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top), file=sys.stderr)


if __name__ == "__main__":
    main()
