"""RNNsearch: Bahdanau, Cho & Bengio 2014, "Neural machine translation by jointly learning to
align and translate" (section 3 and appendix A).

Encoder: a bidirectional GRU; the annotation of word j is h_j = [h->_j ; h<-_j] (section 3.2).
Decoder: at step i the alignment model scores every annotation against the previous state
s_{i-1}, giving the context c_i = sum_j alpha_ij h_j (eq. 5-6); the GRU then computes
s_i = f(s_{i-1}, y_{i-1}, c_i) (eq. 4), and the readout predicts y_i from s_i, y_{i-1} and c_i
through maxout units (A.2.2). The decoder starts from s_0 = tanh(W_s h<-_1) (A.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.attention import AdditiveAttention
from seq2seq.checks import positive
from seq2seq.dropout import Dropout
from seq2seq.models.base import Maxout, Memory, ModelConfig, Seq2Seq, State, lengths, run_rnn
from seq2seq.tokenizer import PAD


@dataclass(frozen=True)
class BahdanauConfig(ModelConfig):
    name: str = "bahdanau"
    emb_dim: int = 256  # word embedding size (the paper's m = 620)
    hidden_dim: int = 512  # n: the decoder's state, and each encoder direction's (the paper's 1000)
    attn_dim: int = 512  # n': the alignment model's hidden layer (the paper's 1000)

    def check(self) -> None:
        super().check()
        positive(self, "emb_dim", "hidden_dim", "attn_dim")


class Bahdanau(Seq2Seq):
    def __init__(self, cfg: BahdanauConfig, vocab_size: int):
        super().__init__()
        E, H, A = cfg.emb_dim, cfg.hidden_dim, cfg.attn_dim
        self.H = H
        self.src_emb = nn.Embedding(vocab_size, E, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(vocab_size, E, padding_idx=PAD)
        self.encoder = nn.GRU(E, H, batch_first=True, bidirectional=True)
        self.W_s = nn.Linear(H, H)
        self.attention = AdditiveAttention(query_dim=H, key_dim=2 * H, attn_dim=A)
        self.decoder = nn.GRUCell(E + 2 * H, H)
        self.readout = Maxout(H + 2 * H + E, E)
        self.W_o = nn.Linear(E, vocab_size)
        self.dropout = Dropout(cfg.dropout)

    def encode(self, src: Tensor, src_mask: Tensor) -> Memory:
        S = src.size(1)
        x = self.dropout(self.src_emb(src))  # (B, S, E)
        packed = pack_padded_sequence(x, lengths(src_mask).cpu(), batch_first=True, enforce_sorted=False)
        h, _ = run_rnn(self.encoder, packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=S)  # (B, S, 2H) annotations
        U_h = self.attention.project_keys(h).clone()  # (B, S, A); a copy, not a view: see compile_steps
        h = h.to(U_h.dtype)  # in the alignment model's dtype (bf16 under autocast): cast once, not at every step
        return {"h": h, "U_h": U_h, "src_mask": src_mask}

    def init_state(self, memory: Memory) -> State:
        h_back_1 = memory["h"][:, 0, self.H:]  # (B, H) the backward RNN's state at the first word
        return {"s": torch.tanh(self.W_s(h_back_1))}  # s_0 (B, H)

    def _step(self, memory: Memory, s: Tensor, Ey: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """s_{i-1} (B, H), E y_{i-1} (B, E) -> s_i (B, H), c_i (B, 2H), alpha_i (B, S)."""
        c, alpha = self.attention(s, memory["U_h"], memory["h"], memory["src_mask"])
        s = self.decoder(torch.cat([Ey, c], dim=-1), s)  # (B, E + 2H) -> (B, H)
        return s, c, alpha

    def _readout(self, s: Tensor, c: Tensor, Ey: Tensor) -> Tensor:
        t = self.readout(torch.cat([s, c, Ey], dim=-1))  # (..., H + 2H + E) -> (..., E)
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
            for t in (memory["h"], memory["U_h"], memory["src_mask"]):  # (B, S, ...)
                torch._dynamo.maybe_mark_dynamic(t, 0)
                torch._dynamo.maybe_mark_dynamic(t, 1)
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
