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
from seq2seq.dropout import Dropout
from seq2seq.models.base import Memory, Seq2Seq, State
from seq2seq.models.configs import TransformerConfig
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
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d = cfg.d_model
        self.self_attn = MultiHeadAttention(d, cfg.heads, cfg.dropout)
        self.ff = feed_forward(d, cfg.ff_dim, cfg.dropout)
        self.sub1, self.sub2 = (Sublayer(d, cfg.dropout, cfg.pre_norm) for _ in range(2))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.sub1(x, lambda y: self.self_attn(y, y, y, mask)[0])  # (B, S, d)
        return self.sub2(x, self.ff)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d = cfg.d_model
        self.self_attn = MultiHeadAttention(d, cfg.heads, cfg.dropout)
        self.cross_attn = MultiHeadAttention(d, cfg.heads, cfg.dropout)
        self.ff = feed_forward(d, cfg.ff_dim, cfg.dropout)
        self.sub1, self.sub2, self.sub3 = (Sublayer(d, cfg.dropout, cfg.pre_norm) for _ in range(3))

    def forward(self, x: Tensor, cross_kv: tuple[Tensor, Tensor], src_mask: Tensor, self_mask: Tensor | None,
                past_kv: tuple[Tensor, Tensor] | None = None,
                need_weights: bool = False) -> tuple[Tensor, tuple[Tensor, Tensor] | None, Tensor | None]:
        """x (B, T, d); cross_kv: the source's keys and values for this layer's cross-attention
        (B, nh, S, hs) each; past_kv, when decoding step by step: the keys and values of the
        positions before x (B, nh, t, hs), returned with x's own appended. Returns the new x, the
        grown past (None when teacher-forced) and the cross-attention weights when asked."""
        def self_attention(y: Tensor) -> Tensor:
            nonlocal past_kv
            k, v = self.self_attn.project_kv(y, y)  # (B, nh, T, hs) each
            if past_kv is not None:
                k, v = past_kv = torch.cat([past_kv[0], k], dim=2), torch.cat([past_kv[1], v], dim=2)
                # (B, nh, t + T, hs) each
            return self.self_attn.attend(y, k, v, self_mask)[0]

        weights = None

        def cross_attention(y: Tensor) -> Tensor:
            nonlocal weights
            out, weights = self.cross_attn.attend(y, *cross_kv, src_mask, need_weights)
            return out

        x = self.sub1(x, self_attention)
        x = self.sub2(x, cross_attention)
        return self.sub3(x, self.ff), past_kv, weights  # (B, T, d), past, (B, nh, T, S) or None


class Transformer(Seq2Seq):
    def __init__(self, cfg: TransformerConfig, vocab_size: int):
        super().__init__()
        d = cfg.d_model
        self.d_model, self.heads, self.causal = d, cfg.heads, cfg.causal
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
        self.max_positions = cfg.max_positions

    def _embed(self, emb: nn.Embedding, tokens: Tensor, positions: Tensor) -> Tensor:
        return self.dropout(emb(tokens) * math.sqrt(self.d_model) + self.pe[positions])  # (B, T, d)

    def encode(self, src: Tensor, src_mask: Tensor) -> Memory:
        x = self._embed(self.src_emb, src, torch.arange(src.size(1), device=src.device))  # (B, S, d)
        mask = src_mask[:, None, None, :]  # (B, 1, 1, S) broadcast over heads and queries
        for layer in self.encoder:
            x = layer(x, mask)
        enc = self.enc_norm(x)  # (B, S, d)
        # each decoder layer's cross-attention keys and values, (B, nh, S, hs) each: once per sentence
        return {"src_mask": src_mask, "cross_kv": [layer.cross_attn.project_kv(enc, enc) for layer in self.decoder]}

    def init_state(self, memory: Memory) -> State:
        B = memory["src_mask"].size(0)
        device = memory["src_mask"].device
        empty = torch.zeros(B, self.heads, 0, self.d_model // self.heads, device=device)  # (B, nh, 0, hs): no past
        return {"t": torch.zeros(B, dtype=torch.long, device=device), "past_kv": [(empty, empty) for _ in self.decoder]}

    def _decode(self, memory: Memory, x: Tensor, self_mask: Tensor | None, past_kv: list | None = None,
                need_weights: bool = False, layer: int = -1) -> tuple[Tensor, list | None, Tensor | None]:
        """x (B, T, d) through the decoder stack -> what the output layer reads (B, T, d), each layer's grown past
        (when given one) and layer `layer`'s cross-attention weights (when asked)."""
        src_mask = memory["src_mask"][:, None, None, :]  # (B, 1, 1, S)
        grown, weights = [], None
        for i, block in enumerate(self.decoder):
            want = need_weights and i == layer % len(self.decoder)
            past = past_kv[i] if past_kv is not None else None
            x, past, w = block(x, memory["cross_kv"][i], src_mask, self_mask, past, want)
            grown.append(past)
            weights = w if want else weights
        return self.dec_norm(x), grown if past_kv is not None else None, weights  # (B, T, d)

    def decode_step(self, memory: Memory, state: State, prev: Tensor, need_weights: bool = False,
                    layer: int = -1) -> tuple[Tensor, State, Tensor | None]:
        t = state["t"]  # (B,) the position being predicted from
        x = self._embed(self.tgt_emb, prev.unsqueeze(1), t.unsqueeze(1))  # (B, 1, d)
        h, past_kv, weights = self._decode(memory, x, None, state["past_kv"], need_weights, layer)
        if weights is not None:
            weights = weights.mean(dim=1).squeeze(1)  # (B, nh, 1, S) -> (B, S), averaged over heads
        return self.out(h.squeeze(1)), {"t": t + 1, "past_kv": past_kv}, weights  # (B, V)

    @property
    def output_layer(self) -> nn.Linear:
        return self.out

    def features(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        memory = self.encode(src, src_mask)
        T = tgt_in.size(1)
        x = self._embed(self.tgt_emb, tgt_in, torch.arange(T, device=tgt_in.device))  # (B, T, d)
        # all positions at once, no past; without the causal mask each position also sees the
        # later target tokens, the answer it is trained to predict, which decoding never has
        h, _, _ = self._decode(memory, x, causal_mask(T, tgt_in.device) if self.causal else None)
        return h  # (B, T, d)
