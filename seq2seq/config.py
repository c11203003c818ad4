"""Typed, validated configuration.

A Config is four frozen dataclasses: data, train and eval here, and the model's own config,
which lives beside the model (seq2seq/models/) and holds the sizes its paper names. YAML files
and `--set section.key=value` only override the defaults; an unknown key, a wrong type or an
out-of-range value raises UserError naming the key. The resolved config is written into every run dir and every checkpoint, so
`eval` and `translate` need nothing but the run dir.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seq2seq.checks import at_most, build, non_negative, one_of, positive, probability
from seq2seq.errors import UserError
from seq2seq.models import MODELS, ModelConfig, model_config

DEFAULT_DATASET = "bentrevett/multi30k"
MAX_CONCAT_K = 16  # data.concat_k: each k adds another copy of the training text
MAX_BOOTSTRAP = 10_000  # eval.bootstrap: 95% intervals settle long before
MAX_YAML_NODES = 10_000  # a config holds about 60 values; more, counting each alias anew, is an alias bomb
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = DEFAULT_DATASET  # hub id or local directory in the same layout
    dataset_config: str | None = None  # e.g. "de-en" for wmt/wmt14
    src_lang: str = "de"
    tgt_lang: str = "en"
    max_words: int = 100  # cleaning: pairs with a longer side (in words) are dropped
    max_tokens: int = 400  # and training pairs with a longer side in sentencepiece pieces (one long word is many)
    max_train_pairs: int | None = None  # keep only the first N training pairs
    concat_k: int = 1  # augment training with pairs made of up to k consecutive pairs
    vocab_size: int = 8000  # joint de+en sentencepiece vocabulary
    spm_model_type: str = "unigram"  # unigram | bpe

    def check(self) -> None:
        positive(self, "max_words", "max_tokens", "concat_k", "vocab_size")
        at_most(self, "concat_k", MAX_CONCAT_K, "each k adds another copy of the training text")
        if self.max_train_pairs is not None:
            positive(self, "max_train_pairs")
        one_of(self, "spm_model_type", ("unigram", "bpe"))
        if self.src_lang == self.tgt_lang:
            raise UserError(f"data.src_lang and data.tgt_lang are both {self.src_lang!r}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    max_steps: int | None = None  # stop after this many updates
    time_budget: float | None = None  # seconds; stop cleanly (checkpoint + validation) at it
    batch_tokens: int = 4096  # target tokens per batch (the bound of the length buckets)
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    weight_decay: float = 0.0
    warmup_steps: int = 500
    schedule: str = "inverse_sqrt"  # inverse_sqrt | cosine | constant (all after warmup)
    min_lr: float = 1e-5  # cosine ends here
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    patience: int = 5  # validations without a better BLEU before stopping
    eval_every: int = 0  # validate every N steps; 0 = once per epoch
    checkpoint_every: int = 0  # also save `last` every N steps; 0 = at validations only
    checkpoint_seconds: float = 600.0  # and at least this often (0 = off)
    max_nonfinite: int = 0  # batches with a NaN/inf loss or gradient skipped before training stops
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    compile: bool = False  # torch.compile the model (CUDA only)
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; auto: bf16 where the device is fast at it)
    log_every: int = 50
    keep_best: int = 1  # checkpoints of highest validation BLEU kept for `seq2seq average` (1: best.pt alone)
    tensorboard: bool = False  # also write the curves as TensorBoard event files into RUN/tensorboard/

    def check(self) -> None:
        positive(self, "epochs", "batch_tokens", "lr", "log_every", "keep_best")
        for name in ("max_steps", "time_budget"):
            if getattr(self, name) is not None:
                positive(self, name)
        non_negative(self, "warmup_steps", "weight_decay", "min_lr", "clip_norm", "patience",
                      "eval_every", "checkpoint_every", "checkpoint_seconds", "max_nonfinite")
        probability(self, "label_smoothing")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise UserError(f"train.betas must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.seed < 2**63:
            raise UserError(f"train.seed must be in [0, 2**63), got {self.seed}")
        if self.min_lr > self.lr:
            raise UserError(f"train.min_lr must be at most train.lr ({self.lr:g}): the rate anneals down to it, "
                            f"got {self.min_lr:g}")
        one_of(self, "schedule", ("inverse_sqrt", "cosine", "constant"))
        one_of(self, "device", ("auto", "cpu", "cuda"))
        one_of(self, "precision", PRECISIONS)


@dataclass(frozen=True)
class EvalConfig:
    beam: int = 1  # 1 = greedy
    length_penalty: float = 1.0  # beam: score / length**alpha
    max_len_a: float = 1.5  # longest output = a * source length + b tokens
    max_len_b: int = 10
    buckets: list[int] = field(default_factory=lambda: [10, 15, 20])  # upper edges in words
    concat: list[int] = field(default_factory=lambda: [1])  # probe: k consecutive pairs
    bootstrap: int = 1000  # resamples for the 95% intervals (0 = none)
    batch_tokens: int = 8000  # source tokens per decoding batch
    batch_examples: int = 0  # sentences per decoding batch instead, where set (> 0)
    precision: str = "fp32"  # fp32 | bf16 | auto, as train.precision, for search and the NLL

    def check(self) -> None:
        positive(self, "beam", "max_len_a", "batch_tokens")
        non_negative(self, "length_penalty", "max_len_b", "bootstrap", "batch_examples")
        at_most(self, "bootstrap", MAX_BOOTSTRAP, "95% intervals settle with about 1000 resamples")
        if not self.buckets or sorted(set(self.buckets)) != self.buckets or self.buckets[0] < 1:
            raise UserError(f"eval.buckets must be increasing positive word counts, got {self.buckets}")
        if not self.concat or min(self.concat) < 1:
            raise UserError(f"eval.concat must be positive integers, got {self.concat}")
        one_of(self, "precision", PRECISIONS)


def _default_model() -> ModelConfig:
    return model_config({}, "model")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=_default_model)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(raw: object, where: str = "config") -> Config:
        """Build and validate a Config from nested dicts; unknown keys and bad types raise. (A
        run's saved config goes through runfiles.migrate_config first.)"""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise UserError(f"{where}: expected a mapping of sections, got {type(raw).__name__}")
        for key in raw:
            if key not in ("model", *SECTIONS):
                raise UserError(f"{where}: unknown section {key!r} (expected one of data, model, train, eval)")
        sections = {name: build(cls, raw.get(name) or {}, f"{where}: {name}") for name, cls in SECTIONS.items()}
        config = Config(model=model_config(raw.get("model") or {}, f"{where}: model"), **sections)
        for section in (*sections.values(), config.model):
            section.check()
        return config

    def replace(self, overrides: dict[str, object]) -> Config:
        """A new Config with `section.key` overrides applied, validated. A new model.name comes
        first and keeps the settings the two models share (the other model's own ones go)."""
        raw = self.to_dict()
        if "model.name" in overrides and overrides["model.name"] != raw["model"]["name"]:
            name = overrides["model.name"]
            own = {f.name for f in dataclasses.fields(MODELS[name])} if name in MODELS else set()
            renamed = {key: value for key, value in raw["model"].items() if key in own} | {"name": name}
            raw["model"] = dataclasses.asdict(model_config(renamed, "model"))
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in raw or not key:
                raise UserError(f"unknown config key {dotted!r}: expected section.key, "
                                f"section one of {', '.join(raw)}")
            if key not in raw[section]:
                what = f" (model {raw['model']['name']} has {', '.join(raw['model'])})" if section == "model" else ""
                raise UserError(f"unknown config key {dotted!r}{what}")
            raw[section][key] = value
        return Config.from_dict(raw)


SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}


def load_config(path: str | Path | None = None, overrides: dict[str, object] | None = None,
                model: str | None = None) -> Config:
    """Defaults <- YAML file (or configs/<model>.yaml) <- overrides."""
    raw: object = {}
    if path is None and model is not None:
        path = config_path(model)
    if path is not None:
        raw = read_yaml(Path(path))
    config = Config.from_dict(raw, where=str(path) if path else "config")
    return config.replace(overrides or {})


def config_path(model: str) -> Path:
    """The shipped config of a model, configs/<model>.yaml: inside the package where a wheel is
    installed (pyproject.toml puts configs/ there), else at the top level of the checkout that
    holds the package (an editable install, or PYTHONPATH=checkout)."""
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    package = Path(__file__).resolve().parent
    configs = package / "configs"
    if not configs.is_dir():
        configs = package.parent / "configs"
    path = configs / f"{model}.yaml"
    if not path.exists():
        raise UserError(f"no shipped config for model {model!r} at {path}")
    return path


def read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read config file {path}: {e}") from None
    try:
        return safe_yaml(text, str(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"malformed YAML in {path}{at}: {getattr(e, 'problem', e)}") from None


def safe_yaml(text: str, where: str) -> object:
    """yaml.safe_load, in bounded memory: a document whose aliases expand it past MAX_YAML_NODES
    nodes (an alias bomb) is refused before it is built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node) > MAX_YAML_NODES:
            raise UserError(f"{where}: YAML whose aliases expand it to more than {MAX_YAML_NODES} values "
                            "is refused (an alias bomb?)")
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node) -> int:
    """Nodes in the document with every alias written out, counted up to just past MAX_YAML_NODES."""
    count, todo = 1, [node]
    while todo and count <= MAX_YAML_NODES:
        node = todo.pop()
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            continue
        count += len(children)
        todo += children
    return count


def parse_set(items: list[str]) -> dict[str, object]:
    """`--set section.key=value` items -> {"section.key": value}; values parsed as YAML."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects section.key=value, got {item!r}")
        try:
            out[key.strip()] = safe_yaml(value, "--set") if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out
