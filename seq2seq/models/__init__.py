"""The translators: rnn, lstm, bahdanau, transformer. Importing the package needs no torch: it
names the models and their configs (configs.py); models/build.py builds them."""

from seq2seq.models.configs import DEFAULT_MODEL, MODELS, ModelConfig, model_config

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelConfig", "model_config"]
