"""RNNsearch: Bahdanau, Cho & Bengio 2014, "Neural machine translation by jointly learning to
align and translate" (section 3 and appendix A).

Encoder: a bidirectional GRU; the annotation of word j is h_j = [h->_j ; h<-_j] (section 3.2).
Decoder: at step i the alignment model scores every annotation against the previous state
s_{i-1}, giving the context c_i = sum_j alpha_ij h_j (eq. 5-6); the GRU then computes
s_i = f(s_{i-1}, y_{i-1}, c_i) (eq. 4), and the readout predicts y_i from s_i, y_{i-1} and c_i
through maxout units (A.2.2). The decoder starts from s_0 = tanh(W_s h<-_1) (A.2.2).

`model.attention` changes how c_i is made, and nothing else, so that one network climbs the
course's ladder (seq2seq/attention.py) with its sizes, initialisation and training fixed:
  none       RNNencdec: c = [h->_Tx ; h<-_1], the encoder's final states, the same at every step
  mean       c = mean_j h_j: the whole source, the same at every step (uniform weights)
  dot        rung 1: e_ij = q_i . h_j / sqrt(2H) with q_i = [s_{i-1} ; s_{i-1}] (the state, of size
             H, meets each direction's half of h_j, of size 2H), no parameters; c_i = sum_j alpha_ij h_j
  general    rung 2: learned projections of the query, the keys and the values into attn_dim,
             one head of scaled dot product, W_O back to 2H
  multihead  rung 4: the same projections and sizes as general, split into `heads` heads
  additive   rung 5: the paper's alignment model (the default)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.attention import AdditiveAttention, MultiHeadAttention, dot_attention
from seq2seq.dropout import Dropout
from seq2seq.models.base import Maxout, Memory, Seq2Seq, State, lengths, run_rnn
from seq2seq.models.configs import BahdanauConfig
from seq2seq.tokenizer import PAD

FIXED_CONTEXT = ("none", "mean")  # c is made once per sentence, not at each step
SOURCE_DIM = {"h": 1, "U_h": 1, "src_mask": 1, "alpha": 1, "k": 2, "v": 2}  # Memory's source dimension


class Bahdanau(Seq2Seq):
    def __init__(self, cfg: BahdanauConfig, vocab_size: int):
        super().__init__()
        E, H, A = cfg.emb_dim, cfg.hidden_dim, cfg.attn_dim
        self.H, self.form = H, cfg.attention
        self.src_emb = nn.Embedding(vocab_size, E, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(vocab_size, E, padding_idx=PAD)
        self.encoder = nn.GRU(E, H, batch_first=True, bidirectional=True)
        self.W_s = nn.Linear(H, H)
        if self.form == "additive":
            self.attention = AdditiveAttention(query_dim=H, key_dim=2 * H, attn_dim=A)
        elif self.form in ("general", "multihead"):
            heads = cfg.heads if self.form == "multihead" else 1
            self.attention = MultiHeadAttention(A, heads, query_dim=H, key_dim=2 * H)
        self.decoder = nn.GRUCell(E + 2 * H, H)
        self.readout = Maxout(H + 2 * H + E, E)
        self.W_o = nn.Linear(E, vocab_size)
        self.dropout = Dropout(cfg.dropout)

    def encode(self, src: Tensor, src_mask: Tensor) -> Memory:
        S = src.size(1)
        x = self.dropout(self.src_emb(src))  # (B, S, E)
        packed = pack_padded_sequence(x, lengths(src_mask).cpu(), batch_first=True, enforce_sorted=False)
        h, h_n = run_rnn(self.encoder, packed)  # h_n (2, B, H): h->_Tx and h<-_1
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=S)  # (B, S, 2H) annotations
        memory = {"h": h, "src_mask": src_mask}
        if self.form == "additive":
            U_h = self.attention.project_keys(h).clone()  # (B, S, A); a copy, not a view: see compile_steps
            memory |= {"U_h": U_h, "h": h.to(U_h.dtype)}  # h in the alignment model's dtype (bf16 under
            # autocast): cast once, not at every step
        elif self.form in ("general", "multihead"):
            memory["k"], memory["v"] = self.attention.project_kv(h, h)  # (B, nh, S, A / nh) each
        elif self.form == "none":
            memory["c"] = torch.cat([h_n[0], h_n[1]], dim=-1).to(h.dtype)  # (B, 2H)
        elif self.form == "mean":
            alpha = src_mask / lengths(src_mask).unsqueeze(1)  # (B, S) uniform over the real tokens
            memory["alpha"] = alpha.to(h.dtype)
            memory["c"] = torch.bmm(memory["alpha"].unsqueeze(1), h).squeeze(1)  # (B, 1, S) @ (B, S, 2H) -> (B, 2H)
        return memory

    def init_state(self, memory: Memory) -> State:
        h_back_1 = memory["h"][:, 0, self.H:]  # (B, H) the backward RNN's state at the first word
        return {"s": torch.tanh(self.W_s(h_back_1))}  # s_0 (B, H)

    def context(self, memory: Memory, s: Tensor) -> tuple[Tensor, Tensor | None]:
        """c_i (B, 2H) and the weights alpha_i (B, S) it was made with (None for `none`), from s_{i-1} (B, H)."""
        if self.form == "additive":
            return self.attention(s, memory["U_h"], memory["h"], memory["src_mask"])
        if self.form in FIXED_CONTEXT:
            return memory["c"], memory.get("alpha")
        mask = memory["src_mask"].unsqueeze(1)  # (B, 1, S): one query per sentence
        if self.form == "dot":
            q = torch.cat([s, s], dim=-1).unsqueeze(1).to(memory["h"].dtype)  # (B, 1, 2H)
            c, alpha = dot_attention(q, memory["h"], mask)  # (B, 1, 2H), (B, 1, S)
            return c.squeeze(1), alpha.squeeze(1)
        c, alpha = self.attention.attend(s.unsqueeze(1), memory["k"], memory["v"], mask.unsqueeze(1),
                                         need_weights=True)  # (B, 1, 2H), (B, nh, 1, S)
        return c.squeeze(1), alpha.mean(1).squeeze(1)  # the heads' weights averaged: (B, S)

    def _step(self, memory: Memory, s: Tensor, Ey: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """s_{i-1} (B, H), E y_{i-1} (B, E) -> s_i (B, H), c_i (B, 2H), alpha_i (B, S)."""
        c, alpha = self.context(memory, s)
        s = self.decoder(torch.cat([Ey, c.to(Ey.dtype)], dim=-1), s)  # (B, E + 2H) -> (B, H)
        return s, c, alpha

    def _readout(self, s: Tensor, c: Tensor, Ey: Tensor) -> Tensor:
        t = self.readout(torch.cat([s, c.to(s.dtype), Ey], dim=-1))  # (..., H + 2H + E) -> (..., E)
        return self.dropout(t)  # what W_o reads

    @property
    def output_layer(self) -> nn.Linear:
        return self.W_o

    def decode_step(self, memory: Memory, state: State, prev: Tensor, need_weights: bool = False,
                    layer: int = -1) -> tuple[Tensor, State, Tensor | None]:
        Ey = self.dropout(self.tgt_emb(prev))  # (B, E)
        s, c, alpha = self._step(memory, state["s"], Ey)
        return self.W_o(self._readout(s, c, Ey)), {"s": s}, alpha  # (B, V)

    def compile_steps(self, **options) -> None:
        """The recurrence step (attention, then GRU cell) is compiled alone: compiling the whole
        forward would unroll its loop, a new graph for every target length. The batch and source
        dimensions of its inputs are marked dynamic, and only those: with every dimension
        symbolic (dynamic=True), inductor's CPU code generation fails on the sizes that must add
        up to the GRU cell's input. One graph serves every step of every batch for each grad
        mode and autocast state it runs under, and one more each for batches of one sentence
        (dynamic shapes still specialise size 1): in training, validation and search, 6 at most,
        under dynamo's recompile limit (8). Its tensor inputs are never views, since dynamo
        guards on that too (features' Ey[:, i] and encode's U_h are copies)."""
        step = torch.compile(self._step, **options)

        def marked_step(memory: Memory, s: Tensor, Ey: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            for key, t in memory.items():  # (B, S, ...), (B, nh, S, hs) or (B, 2H)
                torch._dynamo.maybe_mark_dynamic(t, 0)
                if key in SOURCE_DIM:
                    torch._dynamo.maybe_mark_dynamic(t, SOURCE_DIM[key])
            for t in (s, Ey):  # (B, ...)
                torch._dynamo.maybe_mark_dynamic(t, 0)
            return step(memory, s, Ey)

        self._step = marked_step

    def features(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        memory = self.encode(src, src_mask)
        s = self.init_state(memory)["s"]
        Ey = self.dropout(self.tgt_emb(tgt_in))  # (B, T, E)
        states, contexts = [], []
        for i in range(tgt_in.size(1)):  # the recurrence; the readout is batched over all steps below
            s, c, _ = self._step(memory, s, Ey[:, i].clone())  # (B, E), a copy: see compile_steps
            states.append(s)
            contexts.append(c)
        return self._readout(torch.stack(states, 1), torch.stack(contexts, 1), Ey)  # (B, T, E)
