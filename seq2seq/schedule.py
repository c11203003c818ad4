"""The learning rate at each update: linear warmup, then inverse square root (Vaswani et al.
2017, 5.3), cosine annealing (Loshchilov & Hutter 2017) or constant."""

from __future__ import annotations

import math

from seq2seq.config import TrainConfig


def lr_at(step: int, t: TrainConfig, total_steps: int, elapsed: float = 0.0, warmup_elapsed: float = 0.0) -> float:
    """The rate of update `step` (from 0). After warmup the cosine anneals to t.min_lr by whichever
    rule ends the run first: its steps (`total_steps`: epochs or max_steps) or, given `elapsed`
    training seconds, its time budget. Both count from the end of warmup (`warmup_elapsed`
    seconds into training), so that the rate does not jump there."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.schedule == "inverse_sqrt":
        return t.lr * math.sqrt(max(t.warmup_steps, 1) / (step + 1))
    if t.schedule == "cosine":
        done = (step - t.warmup_steps) / max(1, total_steps - t.warmup_steps)
        if t.time_budget:
            span = t.time_budget - warmup_elapsed
            done = max(done, (elapsed - warmup_elapsed) / span if span > 0 else 1.0)
        done = min(1.0, done)
        return t.min_lr + (t.lr - t.min_lr) * 0.5 * (1 + math.cos(math.pi * done))
    return t.lr
