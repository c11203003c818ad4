"""A run's files, in one place: where each lives, what each holds (a typed record per kind of
file), their reading (checked once, as they are read: one line naming the file and the field)
and their writing, and the one migration of what older versions wrote. Training and evaluation
write through it; compare, report, plots and serve read through it. No torch here.

    run.json           RunInfo: this tool's mark, the model, its size, the machine, every command
                       that trained the run, and when training ends its summary
    config.yaml        the resolved Config; its data.dataset says where the run's data is now
    spm.model          the sentencepiece model
    metrics.jsonl      MetricsLine, one per validation
    train.log          the log
    checkpoints/       best.pt, last.pt, avg.pt, best-<step>.pt (train.keep_best)
    tensorboard/       TensorBoard event files (train.tensorboard)
    eval/              EvalReport <split>[.last|.avg][.beamN].json, each with its hypotheses
                       (.hyp.txt, .concatK.hyp.txt) and SentenceStats (.sentences.jsonl); another
                       dataset's in eval/<its name>-<hash>/

An exported model (`seq2seq export`) is read like a run: its directory holds config.yaml,
spm.model and eval/ as above, the engine's own files, and export.json (ExportInfo, with
EXPORT_MARK: the run, checkpoint and step it holds, and how it was converted) where a run holds
run.json and checkpoints/.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields
from pathlib import Path

import yaml

from seq2seq.config import Config, read_yaml
from seq2seq.errors import UserError
from seq2seq.files import append_line, atomic_write_json, atomic_write_text, read_json_object, read_record, required
from seq2seq.models import MODELS
from seq2seq.runfiles.records import Bucket, EvalReport, ExportInfo, MetricsLine, Probe, RunInfo, SentenceStats

__all__ = ["Bucket", "EvalReport", "ExportInfo", "MetricsLine", "Probe", "RunInfo", "SentenceStats", "RunFiles",
           "EXPORT_MARK", "check_which", "read_report", "write_report", "read_sentences", "read_hypotheses",
           "hypotheses_path", "sentences_path", "migrate_config"]

MARK = {"tool": "seq2seq", "run_format": 1}
EXPORT_MARK = {"tool": "seq2seq", "export_format": 1}
CHECKPOINTS = ("best", "last", "avg")


def check_which(which: str) -> str:
    """A checkpoint's name as --checkpoint takes it."""
    if which not in CHECKPOINTS:
        raise UserError(f"--checkpoint must be best, last or avg, got {which!r}")
    return which


class RunFiles:
    """Where a run keeps each of its files, and their reading and writing."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.spm = self.path / "spm.model"
        self.info = self.path / "run.json"
        self.export_info = self.path / "export.json"
        self.metrics = self.path / "metrics.jsonl"
        self.log = self.path / "train.log"
        self.checkpoints = self.path / "checkpoints"
        self.eval = self.path / "eval"
        self.tensorboard = self.path / "tensorboard"

    def checkpoint(self, which: str) -> Path:
        return self.checkpoints / f"{check_which(which)}.pt"

    def kept(self, step: int) -> Path:
        """The checkpoint of the validation at `step`, kept by train.keep_best."""
        return self.checkpoints / f"best-{step}.pt"

    def kept_checkpoints(self) -> list[Path]:
        """The checkpoints kept by train.keep_best, by step."""
        steps = [p.stem.removeprefix("best-") for p in self.checkpoints.glob("best-*.pt")]
        return [self.kept(step) for step in sorted(int(s) for s in steps if s.isdigit())]

    def report(self, split: str = "test", beam: int = 1, dataset: str | None = None, which: str = "best") -> Path:
        """eval/<split>[.last|.avg][.beamN].json: one report per checkpoint and beam, the best checkpoint's
        under the plain name that `compare` reads. For a dataset other than the run's, in
        eval/<its name>-<hash of its location>/: no two datasets share a folder, and the report on
        the run's own data stays."""
        folder = self.eval
        if dataset:
            folder /= f"{Path(dataset.rstrip('/')).name}-{hashlib.sha256(dataset.encode()).hexdigest()[:8]}"
        name = split + ("" if which == "best" else f".{which}") + ("" if beam == 1 else f".beam{beam}")
        return folder / f"{name}.json"

    # -- config.yaml and run.json --------------------------------------------------------------

    def require(self) -> None:
        if not self.config.exists():
            if self.is_run():
                raise UserError(f"run {self.path} was stopped while it was being set up (no config.yaml): "
                                "train it again with --overwrite")
            raise UserError(f"{self.path} is not a run dir (no config.yaml)")

    def read_config(self) -> Config:
        self.require()
        return Config.from_dict(migrate_config(read_yaml(self.config)), where=str(self.config))

    def write_config(self, config: Config) -> None:
        atomic_write_text(self.config, yaml.safe_dump(config.to_dict(), sort_keys=False))

    def is_run(self) -> bool:
        """Whether this tool wrote the directory: its run.json holds the mark (after the migration)."""
        try:
            return self._info().get("tool") == MARK["tool"]
        except UserError:
            return False

    def _info(self) -> dict:
        return _migrate_info(read_json_object(self.info), self) if self.info.exists() else {}

    def read_info(self) -> RunInfo:
        return read_record(RunInfo, self._info(), str(self.info))

    def update_info(self, **values) -> None:
        """Add values to run.json (checked as it is read); what it held stays."""
        info = {**MARK, **self._info(), **values}
        read_record(RunInfo, info, str(self.info))
        atomic_write_json(self.info, info)

    def read_export(self) -> ExportInfo | None:
        """An exported model's export.json, or None for a run trained here."""
        if not self.export_info.exists():
            return None
        raw = read_json_object(self.export_info)
        if raw.get("export_format") != EXPORT_MARK["export_format"]:
            return None
        missing = [f.name for f in fields(ExportInfo) if required(f) and f.name not in raw]
        if missing:
            raise UserError(f"{self.export_info} lacks {', '.join(missing)}: export the run again")
        return read_record(ExportInfo, raw, str(self.export_info))

    def write_export(self, record: ExportInfo) -> None:
        atomic_write_json(self.export_info, record.to_dict())

    def add_command(self, command: str) -> None:
        """Record one more command that trained the run: `commands` holds every one, `command` the latest."""
        self.update_info(command=command, commands=[*self.read_info().commands, command])

    # -- metrics.jsonl -------------------------------------------------------------------------

    def read_metrics(self) -> list[MetricsLine]:
        """Every validation's line; a line cut short by a killed process is skipped."""
        return [read_record(MetricsLine, raw, f"{self.metrics} line {number}", "no")
                for number, raw in self._metric_lines()]

    def _metric_lines(self) -> list[tuple[int, dict]]:
        if not self.metrics.exists():
            return []
        found = []
        for number, line in enumerate(self.metrics.read_text(encoding="utf-8", errors="replace").split("\n"), 1):
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(raw, dict):
                found.append((number, raw))
        return found

    def append_metrics(self, line: MetricsLine) -> None:
        append_line(self.metrics, json.dumps(asdict(line)))

    def drop_metrics_after(self, step: int) -> int:
        """Drop the lines past `step`, written by a process stopped before it saved the checkpoint
        that followed them; returns how many."""
        lines = self._metric_lines()
        kept = [raw for _, raw in lines if raw.get("step", 0) <= step]
        if len(kept) < len(lines):
            atomic_write_text(self.metrics, "".join(json.dumps(raw) + "\n" for raw in kept))
        return len(lines) - len(kept)


# -- eval/: a report and the files beside it ------------------------------------------------------

def read_report(path: Path, remedy: str) -> EvalReport:
    """An eval report; `remedy` ends the error of one that lacks a field."""
    raw = read_json_object(path)
    missing = [f.name for f in fields(EvalReport) if required(f) and f.name not in raw]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: {remedy}")
    return read_record(EvalReport, raw, str(path))

def write_report(path: Path, report: EvalReport, hypotheses: dict[int, list[str]],
                 sentences: list[SentenceStats]) -> None:
    """The files beside a report, then the report: written only once everything is decoded, so
    an interrupted eval leaves the old files whole."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {path.parent}: {error.strerror}") from None
    for k, lines in hypotheses.items():
        atomic_write_text(hypotheses_path(path, k), "\n".join(lines) + "\n")
    atomic_write_text(sentences_path(path), "".join(json.dumps({key: value for key, value in asdict(s).items()
                                                                if value is not None}) + "\n" for s in sentences))
    atomic_write_json(path, report.to_dict())

def read_sentences(report: Path, run: Path) -> list[SentenceStats] | None:
    """The statistics of each sentence a report of `run` scored; None for a report of an older version."""
    path = sentences_path(report)
    if not path.exists():
        return None
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = read_record(SentenceStats, json.loads(line), "")
            stats = record.bleu_stats  # sacreBLEU's 4-gram statistics
            if len(stats) != 10 or any(type(x) is not int for x in stats) or record.k == 1 and not record.range:
                raise UserError("malformed")
        except (json.JSONDecodeError, UserError):
            raise UserError(f"{path} line {number} is malformed: run `seq2seq eval {run}` again") from None
        found.append(record)
    return found

def read_hypotheses(report: Path, k: int = 1) -> list[str] | None:
    path = hypotheses_path(report, k)
    return path.read_text(encoding="utf-8").split("\n")[:-1] if path.exists() else None


def hypotheses_path(report: Path, k: int = 1) -> Path:
    """The hypotheses beside a report, of the test sentences or (k > 1) of their concatenations."""
    return report.with_suffix(".hyp.txt" if k == 1 else f".concat{k}.hyp.txt")


def sentences_path(report: Path) -> Path:
    return report.with_suffix(".sentences.jsonl")


# -- the one migration from older formats -----------------------------------------------------------

def _migrate_info(info: dict, files: RunFiles) -> dict:
    """run.json as this version writes it. Before the mark, run.json held model, params, torch
    and command beside a config.yaml; before `commands`, only the latest `command`; before
    `best_step`, the best checkpoint was the first validation of the highest BLEU in metrics.jsonl
    (it is saved where BLEU beats every earlier validation's)."""
    if "tool" not in info and {"model", "params", "torch", "command"} <= info.keys() and files.config.exists():
        info = {**MARK, **info}
    if "commands" not in info and isinstance(info.get("command"), str):
        info = {**info, "commands": [info["command"]]}
    if "best_step" not in info:
        scored = [(raw["val_bleu"], -raw["step"]) for _, raw in files._metric_lines()
                  if type(raw.get("step")) is int and type(raw.get("val_bleu")) in (int, float)]
        if scored:
            info = {**info, "best_step": -max(scored)[1]}
    return info


def migrate_config(raw: object) -> object:
    """A run's or a checkpoint's config as this version reads it. Runs were first written with
    one flat model config holding every model's settings: a model section keeps its own."""
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict) or raw["model"].get("name") not in MODELS:
        return raw  # Config.from_dict says what is wrong with it
    own = {f.name for f in fields(MODELS[raw["model"]["name"]])}
    others = {f.name for cls in MODELS.values() for f in fields(cls)} - own
    return {**raw, "model": {key: value for key, value in raw["model"].items() if key not in others}}
