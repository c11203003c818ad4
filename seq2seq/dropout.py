"""Dropout (Srivastava et al. 2014), with a mask that is cheap to draw on the CPU.

Inverted dropout: each element is zeroed with probability p and the rest are scaled by
1 / (1 - p), so that nothing changes at evaluation. torch's CPU kernel draws one random number
per element, serially; in a bf16 training step of the Transformer on the CPU that was the largest
cost that is not a matrix product (`scripts/profile_step.py`: aten::bernoulli_, about a quarter
of the step). Here one 64-bit draw gives the uniforms of four elements, 16 bits each, and p is
rounded to a multiple of 2^-16 (model.dropout is 0 or in [2^-16, 1 - 2^-16]). On a GPU, and inside torch.compile, torch's own dropout runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.checks import DROPOUT_LEVELS as LEVELS  # one 16-bit uniform per element; the rates it allows


def drop(x: Tensor, p: float, training: bool = True) -> Tensor:
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return F.dropout(x, p, training=True)
    dropped = round(p * LEVELS)  # of the LEVELS values a uniform can take, these drop the element
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2**63, 2**63 - 1)  # (ceil(n/4),)
    u = bits.view(torch.int16)[:n].view(x.shape)  # x's shape, uniform in [-2^15, 2^15)
    keep = u >= dropped - LEVELS // 2  # P(keep) = (LEVELS - dropped) / LEVELS
    return x * (keep.to(x.dtype) * (LEVELS / (LEVELS - dropped)))  # the mask, scaled, in x's dtype


class Dropout(nn.Module):
    """nn.Dropout's interface (no parameters, so state dicts are the same) over `drop`."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return drop(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
