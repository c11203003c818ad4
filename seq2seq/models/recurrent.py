"""Encoder-decoders without attention: the whole source is squeezed into the encoder's final
state, and that state is all the decoder gets of it.

`rnn`: Cho et al. 2014, "Learning phrase representations using RNN encoder-decoder for
statistical machine translation" (section 2.2): the encoder's final hidden state is the
context c, fed to the decoder at every step, s_t = f(s_{t-1}, y_{t-1}, c), and the output is
predicted from s_t, y_{t-1} and c. Plain (Elman, tanh) cells here.

`lstm`: Sutskever, Vinyals & Le 2014, "Sequence to sequence learning with neural networks":
the same with stacked LSTM cells, the decoder starting from the encoder's final states, and
optionally the source read backwards (section 3.3).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from seq2seq.dropout import Dropout
from seq2seq.models.base import Maxout, Memory, Seq2Seq, State, lengths, run_rnn
from seq2seq.models.configs import RecurrentConfig
from seq2seq.tokenizer import PAD

CELLS = {"rnn": partial(nn.RNN, nonlinearity="tanh"), "lstm": nn.LSTM}


class EncoderDecoder(Seq2Seq):
    def __init__(self, cfg: RecurrentConfig, vocab_size: int, cell: str):
        super().__init__()
        E, H, L = cfg.emb_dim, cfg.hidden_dim, cfg.layers
        RNN = CELLS[cell]
        self.is_lstm = cell == "lstm"
        self.reverse_source = cfg.reverse_source
        self.src_emb = nn.Embedding(vocab_size, E, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(vocab_size, E, padding_idx=PAD)
        between_layers = cfg.dropout if L > 1 else 0.0
        self.encoder = RNN(E, H, L, batch_first=True, dropout=between_layers)
        self.decoder = RNN(E + H, H, L, batch_first=True, dropout=between_layers)
        self.readout = Maxout(H + H + E, E)
        self.W_o = nn.Linear(E, vocab_size)
        self.dropout = Dropout(cfg.dropout)

    def encode(self, src: Tensor, src_mask: Tensor) -> Memory:
        n = lengths(src_mask)  # (B,)
        if self.reverse_source:  # x_n .. x_1 followed by the padding
            B, S = src.shape
            pos = torch.arange(S, device=src.device).expand(B, S)  # (B, S)
            src = src.gather(1, torch.where(pos < n[:, None], n[:, None] - 1 - pos, pos))
        x = self.dropout(self.src_emb(src))  # (B, S, E)
        packed = pack_padded_sequence(x, n.cpu(), batch_first=True, enforce_sorted=False)
        _, final = run_rnn(self.encoder, packed)
        # The bottleneck: only the final states (L, B, H) leave the encoder; no per-word states.
        if self.is_lstm:
            h_n, c_n = final
            return {"h_n": h_n.transpose(0, 1), "c_n": c_n.transpose(0, 1)}  # (B, L, H) each
        return {"h_n": final.transpose(0, 1)}  # (B, L, H)

    def init_state(self, memory: Memory) -> State:
        state = {"s": memory["h_n"]}  # the decoder starts from the encoder's final states
        if self.is_lstm:
            state["cell"] = memory["c_n"]
        return state

    def _decode(self, memory: Memory, state: State, Ey: Tensor) -> tuple[Tensor, State]:
        """E y (B, T, E) -> what W_o reads (B, T, E); T = 1 for a step, the whole target when teacher-forced."""
        T = Ey.size(1)
        c = memory["h_n"][:, -1].unsqueeze(1).expand(-1, T, -1)  # (B, T, H) context at every step
        hx = state["s"].transpose(0, 1).contiguous()  # (L, B, H)
        if self.is_lstm:
            hx = (hx, state["cell"].transpose(0, 1).contiguous())
        s, hx = run_rnn(self.decoder, torch.cat([Ey, c], dim=-1), hx)  # (B, T, H)
        t = self.readout(torch.cat([s, c, Ey], dim=-1))  # (B, T, E)
        if self.is_lstm:
            new = {"s": hx[0].transpose(0, 1), "cell": hx[1].transpose(0, 1)}  # (B, L, H) each
        else:
            new = {"s": hx.transpose(0, 1)}  # (B, L, H)
        return self.dropout(t), new

    def decode_step(self, memory: Memory, state: State, prev: Tensor, need_weights: bool = False,
                    layer: int = -1) -> tuple[Tensor, State, Tensor | None]:
        Ey = self.dropout(self.tgt_emb(prev.unsqueeze(1)))  # (B, 1, E)
        h, state = self._decode(memory, state, Ey)
        return self.W_o(h.squeeze(1)), state, None  # (B, V); no attention: nothing to look back at

    @property
    def output_layer(self) -> nn.Linear:
        return self.W_o

    def features(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        memory = self.encode(src, src_mask)
        h, _ = self._decode(memory, self.init_state(memory), self.dropout(self.tgt_emb(tgt_in)))
        return h  # (B, T, E)
