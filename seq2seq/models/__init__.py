"""The registry: model name -> its config class and builder(config, vocab_size) -> Seq2Seq.
It is the one list of model names: a config names its model, and the registry builds and checks it."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Callable, NamedTuple

from seq2seq.checks import build
from seq2seq.errors import UserError
from seq2seq.models.bahdanau import Bahdanau, BahdanauConfig
from seq2seq.models.base import ModelConfig, Seq2Seq
from seq2seq.models.recurrent import EncoderDecoder, RecurrentConfig
from seq2seq.models.transformer import Transformer, TransformerConfig

DEFAULT_MODEL = "bahdanau"


class Entry(NamedTuple):
    config: type[ModelConfig]
    build: Callable[[ModelConfig, int], Seq2Seq]


MODELS: dict[str, Entry] = {
    "rnn": Entry(RecurrentConfig, partial(EncoderDecoder, cell="rnn")),
    "lstm": Entry(RecurrentConfig, partial(EncoderDecoder, cell="lstm")),
    "bahdanau": Entry(BahdanauConfig, Bahdanau),
    "transformer": Entry(TransformerConfig, Transformer),
}

# The fields of the one flat model config that runs were saved with before each model had its own.
FLAT_FIELDS = {"name", "emb_dim", "hidden_dim", "attn_dim", "layers", "reverse_source", "d_model", "heads",
               "ff_dim", "enc_layers", "dec_layers", "pre_norm", "tie_embeddings", "dropout", "max_positions"}


def model_config(raw: dict, where: str, saved: bool = False) -> ModelConfig:
    """The `model` section as its model's own config, unchecked (Config.from_dict checks every
    section). A `saved` one drops the flat config's fields that this model does not have."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping, got {type(raw).__name__}")
    name = raw.get("name", DEFAULT_MODEL)
    if not isinstance(name, str) or name not in MODELS:
        raise UserError(f"model.name must be one of {', '.join(MODELS)}, got {name!r}")
    cls = MODELS[name].config
    own = {f.name for f in dataclasses.fields(cls)}
    if saved:
        raw = {key: value for key, value in raw.items() if key in own or key not in FLAT_FIELDS}
    for key in raw:
        if key not in own:
            raise UserError(f"{where}: model {name} has no setting {key!r} (its settings: {', '.join(sorted(own))})")
    return build(cls, raw, where)


def build_model(cfg: ModelConfig, vocab_size: int) -> Seq2Seq:
    return MODELS[cfg.name].build(cfg, vocab_size)
