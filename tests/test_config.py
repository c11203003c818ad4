import pytest

from seq2seq.config import Config, config_path, load_config, parse_set
from seq2seq.errors import UserError
from seq2seq.models import MODELS
from seq2seq.runfiles import migrate_config
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
    ({"model": {"name": "transformer", "d_model": 30, "heads": 4}}, "divisible"),
    ({"model": {"name": "rnn", "heads": 4}}, "model rnn has no setting 'heads'"),
    ({"model": {"d_model": 256}}, "model bahdanau has no setting 'd_model'"),
    ({"train": {"epochs": True}}, "must be int"),
    ({"train": {"lr_rate": 1}}, "unknown key 'lr_rate'"),
    ({"optim": {}}, "unknown section 'optim'"),
    ({"eval": {"buckets": [10, 5]}}, "increasing"),
    ([1, 2], "expected a mapping"),
])
def test_bad_config_values_raise_user_errors(raw, message):
    with pytest.raises(UserError, match=message):
        Config.from_dict(raw)


def test_each_model_has_its_own_settings_and_a_new_name_keeps_the_shared_ones():
    rnn = load_config(TINY, {"model.name": "rnn", "model.layers": 2})
    assert rnn.model.__dict__ == {"name": "rnn", "dropout": 0.1, "emb_dim": 32, "hidden_dim": 32, "layers": 2,
                                  "reverse_source": False}
    assert rnn.model.max_positions is None  # any length fits a recurrent model
    transformer = load_config(TINY, {"model.name": "transformer"})
    assert (transformer.model.dropout, transformer.model.d_model, transformer.model.max_positions) == (0.1, 256, 1024)
    with pytest.raises(UserError, match=r"unknown config key 'model.heads' \(model rnn has"):
        load_config(TINY, {"model.name": "rnn", "model.heads": 4})


def test_a_config_saved_with_the_one_flat_model_config_still_loads():
    """Run dirs and checkpoints written before each model had its own config hold every model's
    fields; migrated as a run's files are (runfiles.migrate_config), each keeps its own and drops the
    others (a user's file does not)."""
    flat = {"name": "lstm", "emb_dim": 256, "hidden_dim": 512, "attn_dim": 512, "layers": 2, "reverse_source": True,
            "d_model": 256, "heads": 8, "ff_dim": 1024, "enc_layers": 3, "dec_layers": 3, "pre_norm": True,
            "tie_embeddings": True, "dropout": 0.3, "max_positions": 1024}
    saved = Config.from_dict(migrate_config({"model": flat}))
    assert saved.model == load_config(config_path("lstm")).model
    with pytest.raises(UserError, match="model lstm has no setting"):
        Config.from_dict({"model": flat})


def test_unknown_set_key():
    with pytest.raises(UserError, match="unknown config key 'train.nope'"):
        load_config(TINY, {"train.nope": 1})


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(UserError, match="malformed YAML"):
        load_config(bad)
