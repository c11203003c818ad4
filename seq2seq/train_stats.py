"""The training statistics of each update (loss, target tokens, skipped, gradient norm), kept
on the device and summed there between reads, so that the loop waits for the device only when
it reads them (a log line, a validation)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import torch


class StepStats(NamedTuple):
    """What one update reports, as 0-dim tensors on the device (summed over steps by StepTotals)."""

    loss_sum: torch.Tensor  # the loss summed over the target tokens of all ranks' batches (0 if skipped)
    tokens: torch.Tensor  # those target tokens (0 if skipped)
    skipped: torch.Tensor  # 1 if the update was skipped for a non-finite loss or gradient
    grad_norm: torch.Tensor  # the gradient norm before clipping (0 if skipped)

    def read(self) -> list[float]:
        """The four numbers on the host: waits for the device."""
        return torch.stack(list(self)).tolist()


@dataclass
class StepTotals:
    """Training loss and throughput over a stretch of updates. The updates add their StepStats on
    the device; read() brings them to the host, so the loop waits for the device only then."""

    loss_sum: float = 0.0
    tokens: int = 0
    seconds: float = 0.0  # wall time from the start to the last read (checkpoint saves included)
    steps: int = 0  # updates taken in, skipped ones included
    skipped: int = 0
    grad_norm_sum: float = 0.0
    unread: StepStats | None = None  # the sums of the updates not read yet
    started: float = field(default_factory=time.monotonic)

    def add(self, step: StepStats) -> None:
        self.unread = step if self.unread is None else StepStats(*(a + b for a, b in zip(self.unread, step)))
        self.steps += 1

    def read(self) -> int:
        """Take in the unread updates; returns how many of them were skipped as non-finite."""
        if self.unread is None:
            return 0
        loss_sum, tokens, skipped, grad_norm_sum = self.unread.read()
        self.unread = None
        self.loss_sum, self.tokens = self.loss_sum + loss_sum, self.tokens + int(tokens)
        self.skipped, self.grad_norm_sum = self.skipped + int(skipped), self.grad_norm_sum + grad_norm_sum
        self.seconds = time.monotonic() - self.started
        return int(skipped)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.tokens, 1)

    @property
    def tok_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)

    @property
    def grad_norm(self) -> float:
        """The mean gradient norm (before clipping) of the updates not skipped."""
        return self.grad_norm_sum / max(self.steps - self.skipped, 1)
