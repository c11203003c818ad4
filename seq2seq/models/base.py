"""The one interface every translator implements, so that training, search and evaluation
never ask which model they hold.

Memory is what the decoder may look at of the source; State is what it carries from one step
to the next. Both are dicts of tensors (or of lists and tuples of them) with the batch in
dimension 0, so search can reorder and repeat them without knowing what they hold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from seq2seq.loss import output_loss
from seq2seq.models.configs import ModelConfig

Memory = dict[str, Any]
State = dict[str, Any]


class Seq2Seq(nn.Module, ABC):
    @abstractmethod
    def encode(self, src: Tensor, src_mask: Tensor) -> Memory:
        """src (B, S) token ids, src_mask (B, S) True at real tokens."""

    @abstractmethod
    def init_state(self, memory: Memory) -> State:
        """The decoder's state before its first step."""

    @abstractmethod
    def decode_step(self, memory: Memory, state: State, prev: Tensor, need_weights: bool = False,
                    layer: int = -1) -> tuple[Tensor, State, Tensor | None]:
        """One step: prev (B,) the previous target token -> logits (B, V), the new state, and
        (when asked for) the attention weights over the source (B, S); None for a model
        without attention. `layer` picks the decoder layer whose source attention is returned,
        for a model with several (attention_layers; Python indexing, -1 the last)."""

    @abstractmethod
    def features(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced: what the output layer reads at every target position (B, T, d)."""

    @property
    @abstractmethod
    def output_layer(self) -> nn.Linear:
        """The last layer: features (..., d) -> logits (..., V)."""

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, tgt_out: Tensor | None = None,
                label_smoothing: float = 0.0) -> Tensor:
        """Teacher-forced logits (B, T, V), equal to T calls of decode_step; given tgt_out (B, T),
        the loss summed over its real tokens instead (loss.output_loss: without the whole logits)."""
        h = self.features(src, src_mask, tgt_in)  # (B, T, d)
        if tgt_out is None:
            return self.output_layer(h)  # (B, T, V)
        return output_loss(h, self.output_layer, tgt_out, label_smoothing)

    attention_layers: int | None = None  # decoder layers whose source attention one can choose
    max_positions: int | None = None  # longest source or output the model can take (None: no limit)

    def compile_steps(self, **options) -> None:
        """torch.compile what runs on every batch, in place (the weights and their names stay as
        they are): here the whole teacher-forced pass up to the output layer."""
        self.features = torch.compile(self.features, **options)


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013), the readout of Bahdanau et al. 2014, A.2.2:
    t_i = max over pairs of (U_o s_i + V_o E y_{i-1} + C_o c_i)."""

    def __init__(self, d_in: int, d_out: int, pool: int = 2):
        super().__init__()
        self.pool = pool
        self.linear = nn.Linear(d_in, d_out * pool)

    def forward(self, x: Tensor) -> Tensor:
        t = self.linear(x)  # (..., d_out * pool)
        return t.view(*t.shape[:-1], -1, self.pool).amax(-1)  # (..., d_out)


def run_rnn(rnn: nn.RNNBase, x: Tensor | PackedSequence, hx=None):
    """rnn(x, hx) with CUDA's autocast off: under it cuDNN's RNN would run in fp16 whatever dtype
    autocast was asked for (ATen's cudnn/AutocastRNN.cpp casts to half), with no loss scaling to
    keep small gradients from underflowing. On CUDA it runs in fp32 (x and hx are fp32), on the
    tensor cores in TF32 (see device.pick_device). The CPU's bf16 autocast stays on: there its
    matrix products run in bf16 (bf16 keeps fp32's range), as those of the other layers do. The
    cells, which CUDA's autocast runs in the dtype asked for (nn.GRUCell), stay under it."""
    with torch.autocast("cuda", enabled=False):
        return rnn(x, hx)


def map_tensors(fn: Callable[[Tensor], Tensor], tree):
    """Apply fn to every tensor of a Memory or State (nested dicts, lists and tuples allowed)."""
    if isinstance(tree, dict):
        return {k: map_tensors(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(map_tensors(fn, v) for v in tree)
    return fn(tree)


def select(tree: dict, index: Tensor) -> dict:
    """Rows `index` of every tensor: reorders or repeats batch entries (beams)."""
    return map_tensors(lambda t: t.index_select(0, index), tree)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def lengths(mask: Tensor) -> Tensor:
    """(B, S) mask -> (B,) number of real tokens."""
    return mask.sum(dim=1)


__all__ = ["ModelConfig", "Seq2Seq", "Memory", "State", "Maxout", "run_rnn", "select", "map_tensors",
           "count_parameters", "lengths"]
