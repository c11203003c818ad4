"""Model name -> builder(config, vocab_size) -> Seq2Seq, for every name in models.MODELS."""

from __future__ import annotations

from functools import partial
from typing import Callable

from seq2seq.models.bahdanau import Bahdanau
from seq2seq.models.base import Seq2Seq
from seq2seq.models.configs import ModelConfig
from seq2seq.models.recurrent import EncoderDecoder
from seq2seq.models.transformer import Transformer

BUILDERS: dict[str, Callable[[ModelConfig, int], Seq2Seq]] = {
    "rnn": partial(EncoderDecoder, cell="rnn"),
    "lstm": partial(EncoderDecoder, cell="lstm"),
    "bahdanau": Bahdanau,
    "transformer": Transformer,
}


def build_model(cfg: ModelConfig, vocab_size: int) -> Seq2Seq:
    return BUILDERS[cfg.name](cfg, vocab_size)
