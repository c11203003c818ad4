"""The typed records of a run's files (runfiles/__init__.py says which file holds which). A field
without a default must be in the file; one with a default may be absent (written by an older
version, or not yet) and reads as its default. Field order is the order written."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

@dataclass(kw_only=True)
class RunInfo:
    """run.json."""

    tool: str | None = None
    run_format: int | None = None
    model: str | None = None
    params: int | None = None
    device: str | None = None
    torch: str | None = None
    command: str | None = None  # the latest of `commands`
    commands: list[str] = field(default_factory=list)
    variant: str | None = None  # the study variant the run belongs to
    best_step: int | None = None  # the step of checkpoints/best.pt
    last_step: int | None = None  # of checkpoints/last.pt
    avg_step: int | None = None  # of checkpoints/avg.pt (the last of the steps it averages)
    steps: int | None = None
    epochs: int | None = None
    train_seconds: float | None = None
    best_val_bleu: float | None = None
    stopped: str | None = None


@dataclass(kw_only=True)
class ExportInfo:
    """export.json: what an exported model (`seq2seq export`) holds, where a run keeps run.json."""

    tool: str | None = None
    export_format: int | None = None
    engine: str
    quantization: str
    ctranslate2: str | None = None  # the converter's version
    run: str  # the run it was exported from, its checkpoint and that checkpoint's step
    checkpoint: str
    step: int
    model: str
    params: int
    steps: int | None = None  # the run's run.json summary, for compare
    train_seconds: float | None = None
    best_val_bleu: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(kw_only=True)
class MetricsLine:
    """One line of metrics.jsonl: one validation."""

    step: int
    epoch: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    val_bleu: float | None = None
    tgt_tok_per_s: float | None = None
    lr: float | None = None
    elapsed: float  # seconds of training so far


@dataclass(kw_only=True)
class Scores:
    """A set of n test sentences' BLEU and reference NLL, each with its 95% interval, and the
    hypotheses' length over the references'."""

    n: int
    bleu: float | None
    ci_low: float | None
    ci_high: float | None
    nll: float | None = None
    nll_ci_low: float | None = None
    nll_ci_high: float | None = None
    len_ratio: float | None = None


@dataclass(kw_only=True)
class Bucket(Scores):
    """An eval report's scores of the test sentences whose source length falls in `range` (words)."""

    range: str


@dataclass(kw_only=True)
class Probe(Scores):
    """An eval report's scores of k consecutive test pairs joined into one (the concatenation probe)."""

    k: int
    src_words: float
    position_nll: list[float | None] | None = None  # evaluate.py: the NLL by position in the reference


@dataclass(kw_only=True)
class EvalReport:
    """eval/<split>.json: what `seq2seq eval` measured of one checkpoint."""

    run: str | None = None
    model: str
    params: int
    engine: str = "pytorch"  # what decoded (engines.py): pytorch, or ctranslate2 for an exported model
    threads: int | None = None  # the engine's CPU threads
    quantization: str | None = None  # an exported model's weights' type
    compute_type: str | None = None  # the type CTranslate2 computes in on this device
    exported_from: dict | None = None  # an exported model's run, checkpoint and step
    dataset: str | None = None  # None: the run's own (reports of older versions)
    split: str = "test"
    checkpoint: str
    step: int
    averaged_steps: list[int] | None = None  # of an avg checkpoint: the steps it is the mean of
    beam: int
    n: int
    bleu: float | None
    chrf: float
    signature: dict = field(default_factory=dict)
    ci_low: float | None
    ci_high: float | None
    nll: float | None = None
    nll_ci_low: float | None = None
    nll_ci_high: float | None = None
    len_ratio: float | None = None
    decode_seconds: float | None = None
    bootstrap: int = 1000  # resamples of its intervals (eval's default, for older reports)
    buckets: list[Bucket]
    concat: list[Probe]
    position_nll: list[float | None] | None = None  # the largest k's

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(kw_only=True)
class SentenceStats:
    """One line of <report>.sentences.jsonl: a scored sentence's k, its bucket (k = 1) and its
    sacreBLEU statistics, in the order of the hypotheses."""

    k: int
    range: str | None = None
    bleu_stats: list[int]
