"""Each model's config, beside the models and without torch: the `model` section of a Config.
MODELS is the one list of model names; each name's builder is in models/build.py.

A config holds the sizes its paper names (the papers are in each model's module docstring)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from seq2seq.checks import build, dropout_rate, one_of, positive
from seq2seq.errors import UserError

DEFAULT_MODEL = "bahdanau"


@dataclass(frozen=True)
class ModelConfig:
    """What every model's config holds (the `model` section); each model's own config adds the
    sizes its paper names."""

    SECTION: ClassVar[str] = "model"
    name: str
    dropout: float = 0.2

    @property
    def max_positions(self) -> int | None:
        """The longest source or output (in tokens, EOS or BOS included) the model can take; None: no limit."""
        return None

    def check(self) -> None:
        dropout_rate(self, "dropout")


@dataclass(frozen=True)
class RecurrentConfig(ModelConfig):
    """rnn and lstm (models/recurrent.py)."""

    name: str = "rnn"  # rnn | lstm: the cell
    emb_dim: int = 256  # word embedding size
    hidden_dim: int = 512  # the state, and the context c the decoder gets
    layers: int = 1  # stacked layers in encoder and decoder
    reverse_source: bool = False  # feed the source backwards (Sutskever et al., 3.3)

    def check(self) -> None:
        super().check()
        positive(self, "emb_dim", "hidden_dim", "layers")


ATTENTIONS = ("none", "mean", "dot", "general", "multihead", "additive")  # models/bahdanau.py's docstring


@dataclass(frozen=True)
class BahdanauConfig(ModelConfig):
    """RNNsearch (models/bahdanau.py), its attention the one variable."""

    name: str = "bahdanau"
    emb_dim: int = 256  # word embedding size (the paper's m = 620)
    hidden_dim: int = 512  # n: the decoder's state, and each encoder direction's (the paper's 1000)
    attn_dim: int = 512  # n': the alignment model's hidden layer (the paper's 1000); general, multihead: d_model
    attention: str = "additive"  # none | mean | dot | general | multihead | additive (models/bahdanau.py)
    heads: int = 4  # multihead's heads (general has one)

    def check(self) -> None:
        super().check()
        positive(self, "emb_dim", "hidden_dim", "attn_dim", "heads")
        one_of(self, "attention", ATTENTIONS)
        if self.attention == "multihead" and self.attn_dim % self.heads:
            raise UserError(f"model.attn_dim ({self.attn_dim}) must be a multiple of model.heads ({self.heads})")


@dataclass(frozen=True)
class TransformerConfig(ModelConfig):
    """The Transformer (models/transformer.py)."""

    name: str = "transformer"
    d_model: int = 256  # d_model (the paper's base: 512)
    heads: int = 8  # h
    ff_dim: int = 1024  # d_ff
    enc_layers: int = 3  # N, encoder
    dec_layers: int = 3  # N, decoder
    pre_norm: bool = True  # LayerNorm before (True) or after (False, the paper) each sublayer
    tie_embeddings: bool = True  # share source, target and output embeddings (3.4)
    max_positions: int = 1024  # the longest sequence the positional encodings cover
    causal: bool = True  # mask future target positions in training (rung 3); false only to show what it is for

    def check(self) -> None:
        super().check()
        positive(self, "d_model", "heads", "ff_dim", "enc_layers", "dec_layers", "max_positions")
        if self.d_model % self.heads:
            raise UserError(f"model.d_model ({self.d_model}) must be divisible by model.heads ({self.heads})")


MODELS: dict[str, type[ModelConfig]] = {  # the one list of model names, each with its config
    "rnn": RecurrentConfig,
    "lstm": RecurrentConfig,
    "bahdanau": BahdanauConfig,
    "transformer": TransformerConfig,
}


def model_config(raw: dict, where: str) -> ModelConfig:
    """The `model` section as its model's own config, unchecked (Config.from_dict checks every section)."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping, got {type(raw).__name__}")
    name = raw.get("name", DEFAULT_MODEL)
    if not isinstance(name, str) or name not in MODELS:
        raise UserError(f"model.name must be one of {', '.join(MODELS)}, got {name!r}")
    own = {f.name for f in dataclasses.fields(MODELS[name])}
    for key in raw:
        if key not in own:
            raise UserError(f"{where}: model {name} has no setting {key!r} (its settings: {', '.join(sorted(own))})")
    return build(MODELS[name], raw, where)
