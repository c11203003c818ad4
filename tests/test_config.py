import pytest

from seq2seq.config import Config, config_path, load_config, parse_set
from seq2seq.errors import UserError
from seq2seq.models import MODELS
from tests.conftest import ROOT, TINY


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_ships_a_valid_config(name):
    assert load_config(config_path(name)).model.name == name


def test_configs_holds_one_config_per_model_and_no_fixture():
    """The top-level configs/ is a real folder (pyproject.toml ships it in the wheel) with a config
    for each model of the registry and nothing else: the tests' tiny.yaml lives in tests/."""
    assert (ROOT / "configs").is_dir() and not (ROOT / "configs").is_symlink()
    assert sorted(path.stem for path in config_path("rnn").parent.glob("*.yaml")) == sorted(MODELS)


def test_overrides_are_typed_and_validated():
    cfg = load_config(TINY, parse_set(["train.lr=3e-4", "model.name=lstm", "eval.buckets=[5, 10]"]))
    assert (cfg.train.lr, cfg.model.name, cfg.eval.buckets) == (3e-4, "lstm", [5, 10])
    assert load_config(TINY, {"train.lr": 1}).train.lr == 1.0  # an int is a fine float


@pytest.mark.parametrize("raw,message", [
    ({"train": {"lr": "fast"}}, "train.lr must be float"),
    ({"train": {"epochs": 0}}, "train.epochs must be positive"),
    ({"model": {"hidden_dim": -4}}, "model.hidden_dim must be positive"),
    ({"model": {"name": "gpt"}}, "model.name must be one of"),
    ({"model": {"dropout": 1.5}}, "dropout"),
    ({"model": {"d_model": 30, "heads": 4}}, "divisible"),
    ({"train": {"epochs": True}}, "must be int"),
    ({"train": {"lr_rate": 1}}, "unknown key 'lr_rate'"),
    ({"optim": {}}, "unknown section 'optim'"),
    ({"eval": {"buckets": [10, 5]}}, "increasing"),
    ([1, 2], "expected a mapping"),
])
def test_bad_config_values_raise_user_errors(raw, message):
    with pytest.raises(UserError, match=message):
        Config.from_dict(raw)


def test_unknown_set_key():
    with pytest.raises(UserError, match="unknown config key 'train.nope'"):
        load_config(TINY, {"train.nope": 1})


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(UserError, match="malformed YAML"):
        load_config(bad)
