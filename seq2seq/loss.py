"""The training loss: cross-entropy summed over the real target tokens (PAD costs nothing), with
label smoothing (Szegedy et al. 2016, section 7): the target distribution is
q = (1 - eps) onehot(y) + eps / V, and the loss of a token is -sum_v q_v log p_v.

token_loss is the definition, on the (N, V) logits (the tests hold output_loss to it).
Training and validation use output_loss, which computes the same number from what the output
layer reads, one block of rows at a time, with its gradients worked out as it goes
(d loss / d logits = p - q): the (N, V) logits, probabilities and their gradient, the largest
tensors of an update, never exist whole. On the CPU, where each fresh tensor of that size costs
a page fault per 4 KiB, this takes about a fifth off a bf16 update (see docs/results.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.tokenizer import PAD

BLOCK_ELEMENTS = 2**21  # rows per block: about 2M logits (8 MB in fp32), reused from block to block


def token_loss(logits: Tensor, tgt_out: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy summed over the real target tokens: (B, T, V), (B, T) -> scalar."""
    return F.cross_entropy(logits.flatten(0, 1).float(), tgt_out.flatten(), ignore_index=PAD,
                           label_smoothing=label_smoothing, reduction="sum")


def output_loss(h: Tensor, output: nn.Linear, tgt_out: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """token_loss(output(h), tgt_out, label_smoothing) without the whole logits: h (B, T, d)
    is what the output layer reads, in the autocast dtype where autocast is on."""
    return _OutputLoss.apply(h.flatten(0, 1), output.weight, output.bias, tgt_out.flatten(), label_smoothing,
                             torch.is_grad_enabled())


class _OutputLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, W: Tensor, b: Tensor | None, y: Tensor, eps: float, grad_enabled: bool) -> Tensor:
        """h (N, d), W (V, d), b (V,) or None, y (N,) -> the summed loss; the gradients of h, W
        and b for an upstream gradient of 1 are kept for backward (none under no_grad)."""
        N, V = h.size(0), W.size(0)
        device = h.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
        grads = ctx.needs_input_grad[:3] if grad_enabled else (False,) * 3
        h_, W_ = h.to(dtype), W.to(dtype)
        b_ = b.to(dtype) if b is not None else None
        dh = torch.empty_like(h_) if grads[0] else None  # (N, d)
        dW = torch.zeros_like(W, dtype=torch.float32) if grads[1] else None  # (V, d)
        db = torch.zeros_like(b, dtype=torch.float32) if b is not None and grads[2] else None  # (V,)
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        rows = max(1, BLOCK_ELEMENTS // V)
        with torch.autocast(device, enabled=False):  # every dtype here is explicit
            for r in range(0, N, rows):
                h_r, y_r = h_[r:r + rows], y[r:r + rows]  # (n, d), (n,)
                log_p = F.log_softmax(F.linear(h_r, W_, b_), dim=-1, dtype=torch.float32)  # (n, V)
                real = (y_r != PAD).unsqueeze(1)  # (n, 1)
                nll = -log_p.gather(1, y_r.unsqueeze(1))  # (n, 1)
                loss += ((1 - eps) * nll - eps * log_p.mean(dim=-1, keepdim=True)).masked_fill(~real, 0).sum()
                if not any(grads):
                    continue
                d_logits = log_p.exp_().sub_(eps / V)  # p - eps / V, in place (n, V)
                d_logits.scatter_add_(1, y_r.unsqueeze(1), d_logits.new_full((len(y_r), 1), eps - 1))  # p - q
                d_logits = d_logits.mul_(real).to(dtype)  # PAD rows: no gradient
                if dh is not None:
                    dh[r:r + rows] = d_logits @ W_  # (n, V) @ (V, d) -> (n, d)
                if dW is not None:
                    dW += (d_logits.T @ h_r).float()  # (V, n) @ (n, d) -> (V, d)
                if db is not None:
                    db += d_logits.sum(0, dtype=torch.float32)  # (V,)
        ctx.save_for_backward(dh, dW, db)
        ctx.dtypes = h.dtype, W.dtype
        return loss

    @staticmethod
    def backward(ctx, g: Tensor):
        dh, dW, db = ctx.saved_tensors
        h_dtype, W_dtype = ctx.dtypes
        scaled = [None if d is None else (d * g).to(t) for d, t in ((dh, h_dtype), (dW, W_dtype), (db, W_dtype))]
        return *scaled, None, None, None
