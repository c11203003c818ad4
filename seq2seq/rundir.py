"""The run directory: everything a run writes lives here, and nothing elsewhere.

    config.yaml        the resolved config
    spm.model          the sentencepiece model
    run.json           model, parameter count, device, and when training ends its summary
    metrics.jsonl      one line per validation
    train.log          the log
    checkpoints/       last.pt (resumable) and best.pt (by validation BLEU); with train.keep_best
                       N > 1 also the N best as best-<step>.pt, and avg.pt, their mean
                       (`seq2seq average`)
    tensorboard/       TensorBoard event files (train.tensorboard)
    eval/              <split>.json reports and <split>.hyp.txt hypotheses (another
                       dataset's in eval/<its name>/)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from seq2seq.config import Config, read_yaml
from seq2seq.errors import UserError
from seq2seq.files import atomic_write_json, atomic_write_text, read_json_object


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.spm = self.path / "spm.model"
        self.info = self.path / "run.json"
        self.metrics = self.path / "metrics.jsonl"
        self.log = self.path / "train.log"
        self.checkpoints = self.path / "checkpoints"
        self.eval = self.path / "eval"
        self.tensorboard = self.path / "tensorboard"

    def checkpoint(self, which: str) -> Path:
        if which not in ("best", "last", "avg"):
            raise UserError(f"--checkpoint must be best, last or avg, got {which!r}")
        return self.checkpoints / f"{which}.pt"

    def kept(self, step: int) -> Path:
        """The checkpoint of the validation at `step`, kept by train.keep_best."""
        return self.checkpoints / f"best-{step}.pt"

    def kept_checkpoints(self) -> list[Path]:
        """The checkpoints kept by train.keep_best, by step."""
        steps = [p.stem.removeprefix("best-") for p in self.checkpoints.glob("best-*.pt")]
        return [self.kept(step) for step in sorted(int(s) for s in steps if s.isdigit())]

    def create(self, overwrite: bool) -> None:
        """Make a fresh run dir; an existing non-empty one is kept unless overwrite."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run dir {self.path} exists and is not a directory")
        if self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise UserError(f"run dir {self.path} already exists: use --resume to continue it "
                                "or --overwrite to replace it")
            if not self.config.exists():
                raise UserError(f"{self.path} is not empty and not a run dir: --overwrite replaces run dirs only")
            shutil.rmtree(self.path)
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create run dir {self.path}: {e.strerror}") from None

    def require(self) -> None:
        if not self.config.exists():
            raise UserError(f"{self.path} is not a run dir (no config.yaml)")

    def write_config(self, config: Config) -> None:
        atomic_write_text(self.config, yaml.safe_dump(config.to_dict(), sort_keys=False))

    def read_config(self) -> Config:
        self.require()
        return Config.from_dict(read_yaml(self.config), where=str(self.config))

    def read_info(self) -> dict:
        return read_json_object(self.info) if self.info.exists() else {}

    def update_info(self, **fields) -> None:
        atomic_write_json(self.info, self.read_info() | fields)

    def read_metrics(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        records = []
        for line in self.metrics.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a killed process: skipped
                continue
            if isinstance(record, dict):
                records.append(record)
        return records
