"""The Transformer: Vaswani et al. 2017, "Attention is all you need", built from the
project's own attention modules (seq2seq.attention), not nn.Transformer.

Sinusoidal positions (section 3.5), embeddings scaled by sqrt(d_model) (3.4), N encoder and
decoder layers of multi-head attention and a position-wise feed-forward network (3.1-3.3),
each sublayer wrapped in a residual connection with dropout and LayerNorm, either after the
residual (the paper) or before the sublayer (pre-norm, Xiong et al. 2020: stabler, no warmup
tuning needed). Decoding caches each layer's past keys and values, so a step costs one
position, not the whole prefix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seq2seq.attention import MultiHeadAttention, causal_mask
from seq2seq.config import ModelConfig
from seq2seq.dropout import Dropout
from seq2seq.models.base import Memory, Seq2Seq, State
from seq2seq.tokenizer import PAD


def sinusoids(n: int, d: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)) -> (n, d)."""
    pos = torch.arange(n, dtype=torch.float).unsqueeze(1)  # (n, 1)
    inv_freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float) * (-math.log(10000.0) / d))  # (d/2,)
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * inv_freq)
    pe[:, 1::2] = torch.cos(pos * inv_freq)
    return pe


class Sublayer(nn.Module):
    """x + Dropout(f(LayerNorm(x))) (pre-norm) or LayerNorm(x + Dropout(f(x))) (post-norm, the paper)."""

    def __init__(self, d: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm, self.dropout, self.pre_norm = nn.LayerNorm(d), Dropout(dropout), pre_norm

    def forward(self, x: Tensor, f) -> Tensor:
        if self.pre_norm:
            return x + self.dropout(f(self.norm(x)))
        return self.norm(x + self.dropout(f(x)))


def feed_forward(d: int, ff: int, dropout: float) -> nn.Module:
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 (section 3.3)."""
    return nn.Sequential(nn.Linear(d, ff), nn.ReLU(), Dropout(dropout), nn.Linear(ff, d))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.self_attn = MultiHeadAttention(d, cfg.heads, cfg.dropout)
        self.ff = feed_forward(d, cfg.ff_dim, cfg.dropout)
        self.sub1, self.sub2 = (Sublayer(d, cfg.dropout, cfg.pre_norm) for _ in range(2))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.sub1(x, lambda y: self.self_attn(y, y, y, mask)[0])  # (B, S, d)
        return self.sub2(x, self.ff)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.self_attn = MultiHeadAttention(d, cfg.heads, cfg.dropout)
        self.cross_attn = MultiHeadAttention(d, cfg.heads, cfg.dropout)
        self.ff = feed_forward(d, cfg.ff_dim, cfg.dropout)
        self.sub1, self.sub2, self.sub3 = (Sublayer(d, cfg.dropout, cfg.pre_norm) for _ in range(3))

    def forward(self, x: Tensor, cache: dict[str, Tensor], src_mask: Tensor, self_mask: Tensor | None,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, T, d). cache holds this layer's cross-attention keys/values ("ck", "cv") and, when
        decoding step by step, its past self-attention keys/values ("k", "v"), which grow here."""
        def self_attention(y: Tensor) -> Tensor:
            k, v = self.self_attn.project_kv(y, y)  # (B, nh, T, hs) each
            if "k" in cache:
                k = cache["k"] = torch.cat([cache["k"], k], dim=2)  # (B, nh, t, hs)
                v = cache["v"] = torch.cat([cache["v"], v], dim=2)
            return self.self_attn.attend(y, k, v, self_mask)[0]

        weights = None

        def cross_attention(y: Tensor) -> Tensor:
            nonlocal weights
            out, weights = self.cross_attn.attend(y, cache["ck"], cache["cv"], src_mask, need_weights)
            return out

        x = self.sub1(x, self_attention)
        x = self.sub2(x, cross_attention)
        return self.sub3(x, self.ff), weights  # (B, T, d), (B, nh, T, S) or None


class Transformer(Seq2Seq):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        d = cfg.d_model
        self.d_model, self.heads = d, cfg.heads
        self.src_emb = nn.Embedding(vocab_size, d, padding_idx=PAD)
        self.tgt_emb = self.src_emb if cfg.tie_embeddings else nn.Embedding(vocab_size, d, padding_idx=PAD)
        self.register_buffer("pe", sinusoids(cfg.max_positions, d), persistent=False)
        self.dropout = Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        # Pre-norm leaves the residual stream unnormalised: one LayerNorm closes each stack.
        self.enc_norm = nn.LayerNorm(d) if cfg.pre_norm else nn.Identity()
        self.dec_norm = nn.LayerNorm(d) if cfg.pre_norm else nn.Identity()
        self.out = nn.Linear(d, vocab_size, bias=False)
        for emb in {self.src_emb, self.tgt_emb}:
            nn.init.normal_(emb.weight, std=d ** -0.5)
        if cfg.tie_embeddings:
            self.out.weight = self.tgt_emb.weight  # (Press & Wolf 2017; section 3.4)
        self.attention_layers = cfg.dec_layers
        self.cross_layer = -1  # whose cross-attention decode_step returns when asked (use_attention_layer)
        self.max_positions = cfg.max_positions

    def use_attention_layer(self, layer: int) -> None:
        self.cross_layer = layer

    def _embed(self, emb: nn.Embedding, tokens: Tensor, positions: Tensor) -> Tensor:
        return self.dropout(emb(tokens) * math.sqrt(self.d_model) + self.pe[positions])  # (B, T, d)

    def encode(self, src: Tensor, src_mask: Tensor) -> Memory:
        x = self._embed(self.src_emb, src, torch.arange(src.size(1), device=src.device))  # (B, S, d)
        mask = src_mask[:, None, None, :]  # (B, 1, 1, S) broadcast over heads and queries
        for layer in self.encoder:
            x = layer(x, mask)
        enc = self.enc_norm(x)  # (B, S, d)
        memory: Memory = {"src_mask": src_mask}
        for i, layer in enumerate(self.decoder):  # cross-attention keys and values: once per sentence
            memory[f"ck{i}"], memory[f"cv{i}"] = layer.cross_attn.project_kv(enc, enc)  # (B, nh, S, hs)
        return memory

    def init_state(self, memory: Memory) -> State:
        B = memory["src_mask"].size(0)
        device = memory["src_mask"].device
        state: State = {"t": torch.zeros(B, dtype=torch.long, device=device)}
        for i in range(len(self.decoder)):
            state[f"k{i}"] = state[f"v{i}"] = torch.zeros(B, self.heads, 0, self.d_model // self.heads,
                                                          device=device)  # empty past
        return state

    def _decode(self, memory: Memory, state: State, x: Tensor, self_mask: Tensor | None,
                need_weights: bool) -> tuple[Tensor, State, Tensor | None]:
        src_mask = memory["src_mask"][:, None, None, :]  # (B, 1, 1, S)
        new: State = {}
        weights = None
        for i, layer in enumerate(self.decoder):
            cache = {"ck": memory[f"ck{i}"], "cv": memory[f"cv{i}"]}
            if f"k{i}" in state:
                cache.update(k=state[f"k{i}"], v=state[f"v{i}"])
            want = need_weights and i == self.cross_layer % len(self.decoder)
            x, w = layer(x, cache, src_mask, self_mask, want)
            weights = w if want else weights
            if "k" in cache:
                new.update({f"k{i}": cache["k"], f"v{i}": cache["v"]})
        return self.out(self.dec_norm(x)), new, weights  # (B, T, V)

    def decode_step(self, memory: Memory, state: State, prev: Tensor,
                    need_weights: bool = False) -> tuple[Tensor, State, Tensor | None]:
        t = state["t"]  # (B,) the position being predicted from
        x = self._embed(self.tgt_emb, prev.unsqueeze(1), t.unsqueeze(1))  # (B, 1, d)
        logits, new, weights = self._decode(memory, state, x, None, need_weights)
        new["t"] = t + 1
        if weights is not None:
            weights = weights.mean(dim=1).squeeze(1)  # (B, nh, 1, S) -> (B, S), averaged over heads
        return logits.squeeze(1), new, weights

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        memory = self.encode(src, src_mask)
        T = tgt_in.size(1)
        x = self._embed(self.tgt_emb, tgt_in, torch.arange(T, device=tgt_in.device))  # (B, T, d)
        logits, _, _ = self._decode(memory, {}, x, causal_mask(T, tgt_in.device), False)  # no past cache
        return logits  # (B, T, V)
