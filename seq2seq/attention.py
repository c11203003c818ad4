"""Every attention of the project, each written once, beside its equation.

The ladder climbs from the simplest form to the one the Transformer uses, in the steps by which
the course this project grew out of (a course on attention, not part of this repository) teaches it:
rung 1 simplified_self_attention (no parameters), rung 2 SelfAttention (learned projections),
rung 3 CausalAttention (future positions masked), rung 4 MultiHeadAttention; additive attention
(Bahdanau et al. 2014, rung 5) stands beside it. Each returns (output, weights) and keeps no state.

The bahdanau model climbs the ladder as cross-attention, its decoder state s (B, H) querying the
annotations h (B, S, 2H), one form per `model.attention` (models/bahdanau.py): `dot` is rung 1
(dot_attention: no parameters), `general` rung 2 and `multihead` rung 4 (MultiHeadAttention with
one head and with several), `additive` rung 5. The Transformer uses MultiHeadAttention and
causal_mask (rung 3, models/transformer.py). The self-attention forms of rungs 1-3
(simplified_self_attention, SelfAttention, CausalAttention) are the course's, tested in
tests/test_attention.py against the forms the models use. dot_product_attention is the
arithmetic of rungs 2-4, written out; MultiHeadAttention calls it where it needs the weights (or
dropout on the CPU), and torch's fused F.scaled_dot_product_attention elsewhere.

Masks are boolean and True where a key may be attended to. Shapes: B batch, T queries,
S keys, d model size, nh heads, hs head size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.dropout import drop


def simplified_self_attention(x: Tensor) -> tuple[Tensor, Tensor]:
    """Rung 1. scores = x x^T, weights = softmax(scores), context = weights x. No parameters."""
    scores = x @ x.transpose(-2, -1)  # (B, T, d) @ (B, d, T) -> (B, T, T)
    weights = torch.softmax(scores, dim=-1)  # (B, T, T)
    return weights @ x, weights  # (B, T, d), (B, T, T)


def dot_attention(q: Tensor, h: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Rung 1 as cross-attention: the queries score the annotations h themselves, which are also
    the values, with no parameters: softmax(q h^T / sqrt(d)) h. q (..., T, d), h (..., S, d).
    The scale of rung 2 keeps the softmax from saturating at large d."""
    return dot_product_attention(q, h, h, mask)


def dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                          dropout: float = 0.0) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention written out, softmax(Q K^T / sqrt(d_k)) V, with masked keys at
    -inf (weight 0) and dropout on the weights; unlike torch's fused kernel it returns the weights.

    q (..., T, d_k), k (..., S, d_k), v (..., S, d_v), mask broadcastable to (..., T, S).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., T, S)
    return drop(weights, dropout) @ v, weights  # (..., T, d_v), (..., T, S)


def causal_mask(T: int, device: torch.device | None = None) -> Tensor:
    """(T, T) True on and below the diagonal: position t sees positions <= t."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


class SelfAttention(nn.Module):
    """Rung 2. Q = x W_q, K = x W_k, V = x W_v; softmax(Q K^T / sqrt(d_k)) V."""

    def __init__(self, d_in: int, d_k: int, bias: bool = False):
        super().__init__()
        self.W_q = nn.Linear(d_in, d_k, bias=bias)
        self.W_k = nn.Linear(d_in, d_k, bias=bias)
        self.W_v = nn.Linear(d_in, d_k, bias=bias)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)  # (B, T, d_k) each
        return dot_product_attention(q, k, v, mask)


class CausalAttention(SelfAttention):
    """Rung 3. Rung 2 with future positions masked and dropout on the weights."""

    def __init__(self, d_in: int, d_k: int, dropout: float = 0.0, bias: bool = False):
        super().__init__(d_in, d_k, bias)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)  # (B, T, d_k) each
        causal = causal_mask(x.size(1), x.device)  # (T, T)
        mask = causal if mask is None else causal & mask
        return dot_product_attention(q, k, v, mask, self.dropout if self.training else 0.0)


class MultiHeadAttention(nn.Module):
    """Rung 4 (Vaswani et al. 2017, section 3.2.2). MultiHead(Q, K, V) = Concat(head_1..head_h) W_O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V), the heads computed in parallel subspaces.
    With one head it is rung 2 (learned projections, scaled dot product) followed by W_O.

    Queries, keys and values are of size d_model unless query_dim or key_dim say otherwise (the
    cross-attention of an RNN decoder state (H) over bidirectional annotations (2H)); W_O maps the
    heads back to the values' size.

    With need_weights=False the fused torch.nn.functional.scaled_dot_product_attention does the
    same arithmetic without materialising the weights (except for dropout on the CPU, whose mask
    torch's kernel draws slowly: see seq2seq/dropout.py); a test checks that both paths agree.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, query_dim: int | None = None,
                 key_dim: int | None = None):
        super().__init__()
        assert d_model % heads == 0
        query_dim, key_dim = query_dim or d_model, key_dim or d_model
        self.heads, self.dropout = heads, dropout
        self.W_q = nn.Linear(query_dim, d_model)
        self.W_k = nn.Linear(key_dim, d_model)
        self.W_v = nn.Linear(key_dim, d_model)
        self.W_o = nn.Linear(d_model, key_dim)

    def split_heads(self, x: Tensor) -> Tensor:
        B, T, d = x.shape
        return x.view(B, T, self.heads, d // self.heads).transpose(1, 2)  # (B, nh, T, hs)

    def project_kv(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values in head form: (B, S, key_dim) -> (B, nh, S, hs) each. Cached by decoders."""
        return self.split_heads(self.W_k(key)), self.split_heads(self.W_v(value))

    def attend(self, query: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
               need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """query (B, T, query_dim) against projected k, v (B, nh, S, hs); mask broadcastable to
        (B, nh, T, S). Returns (B, T, key_dim) and, when asked, the weights (B, nh, T, S)."""
        q = self.split_heads(self.W_q(query))  # (B, nh, T, hs)
        p = self.dropout if self.training else 0.0
        if need_weights or (p and q.device.type == "cpu"):  # torch's CPU kernel draws its dropout slowly
            out, weights = dot_product_attention(q, k, v, mask, p)  # (B, nh, T, hs), (B, nh, T, S)
            weights = weights if need_weights else None
        else:
            out, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None
        B, _, T, _ = out.shape
        out = out.transpose(1, 2).reshape(B, T, -1)  # (B, T, d_model)
        return self.W_o(out), weights

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        return self.attend(query, *self.project_kv(key, value), mask, need_weights)


class AdditiveAttention(nn.Module):
    """Rung 5, Bahdanau, Cho & Bengio 2014, appendix A.1.2: the alignment model
    e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j), alpha_ij = softmax_j(e_ij), c_i = sum_j alpha_ij h_j.

    U_a h_j does not depend on the decoder step, so it is computed once per sentence
    (project_keys) and reused at every step.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.W_a = nn.Linear(query_dim, attn_dim, bias=False)
        self.U_a = nn.Linear(key_dim, attn_dim)
        self.v_a = nn.Linear(attn_dim, 1, bias=False)

    def project_keys(self, h: Tensor) -> Tensor:
        return self.U_a(h)  # (B, S, 2H) -> (B, S, A)

    def forward(self, s: Tensor, U_h: Tensor, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """s (B, Hd) decoder state, U_h (B, S, A) projected keys, h (B, S, 2H) annotations, mask (B, S)."""
        e = self.v_a(torch.tanh(self.W_a(s).unsqueeze(1) + U_h)).squeeze(-1)  # (B, S)
        alpha = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=-1)  # (B, S)
        c = torch.bmm(alpha.unsqueeze(1), h).squeeze(1)  # (B, 1, S) @ (B, S, 2H) -> (B, 2H)
        return c, alpha
