"""The run directory: everything a run writes lives here, and nothing elsewhere.

    run.json           this tool's mark (written first), model, parameter count, device, every
                       command that trained the run, and when training ends its summary
    config.yaml        the resolved config; its data.dataset says where the run's data is now
                       (`train --resume --dataset` moves it), for eval and compare
    spm.model          the sentencepiece model
    metrics.jsonl      one line per validation
    train.log          the log
    checkpoints/       last.pt (resumable) and best.pt (by validation BLEU); with train.keep_best
                       N > 1 also the N best as best-<step>.pt, and avg.pt, their mean
                       (`seq2seq average`)
    tensorboard/       TensorBoard event files (train.tensorboard)
    eval/              <split>.json reports (of best.pt; <split>.last.json and <split>.avg.json
                       of the others), each with its .hyp.txt hypotheses and .sentences.jsonl
                       (another dataset's in eval/<its name>-<hash>/)
    train.lock         locked by the one process that trains the run, for as long as it lives
    .replaced/         with --overwrite, the run being replaced, until the new one saves its
                       first checkpoint; put back where the new one stops before that (a process
                       killed outright leaves it to the next one that locks the run)

An exported model (`seq2seq export`) is read like a run: its directory holds config.yaml,
spm.model and eval/ as above, the engine's own files, and export.json (with EXPORT_MARK: the
run, checkpoint and step it holds, and how it was converted) where a run holds run.json and
checkpoints/.

A directory is a run dir when its run.json holds the mark; --overwrite replaces only the
entries above, never anything else a user keeps beside them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import yaml

from seq2seq.config import Config, read_yaml
from seq2seq.errors import UserError
from seq2seq.files import atomic_write_json, atomic_write_text, check_fields, read_json_object

MARK = {"tool": "seq2seq", "run_format": 1}
EXPORT_MARK = {"tool": "seq2seq", "export_format": 1}
EXPORT_FIELDS = {"engine": str, "quantization": str, "run": str, "checkpoint": str, "step": int, "model": str,
                 "params": int}  # what export.json must hold
LEGACY_INFO = {"model", "params", "torch", "command"}  # what run.json held before the mark
PARTS = ("run.json", "config.yaml", "spm.model", "metrics.jsonl", "train.log", "checkpoints", "tensorboard", "eval")
CHECKOUT = Path(__file__).resolve().parents[1]
METRIC_REQUIRED = ("step", "elapsed")  # in every metrics.jsonl record; the curves are drawn against them
METRIC_TYPES = {"step": int, "epoch": int, "train_loss": float, "val_loss": float, "val_bleu": (float, None),
                "tgt_tok_per_s": float, "lr": float, "elapsed": float}


class RunDir:
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
        self.lock_file = self.path / "train.lock"
        self.replaced = self.path / ".replaced"
        self.created: bool | None = None  # set by create(): whether it made the directory
        self._lock: int | None = None

    def checkpoint(self, which: str) -> Path:
        return self.checkpoints / f"{check_which(which)}.pt"

    def kept(self, step: int) -> Path:
        """The checkpoint of the validation at `step`, kept by train.keep_best."""
        return self.checkpoints / f"best-{step}.pt"

    def kept_checkpoints(self) -> list[Path]:
        """The checkpoints kept by train.keep_best, by step."""
        steps = [p.stem.removeprefix("best-") for p in self.checkpoints.glob("best-*.pt")]
        return [self.kept(step) for step in sorted(int(s) for s in steps if s.isdigit())]

    # -- making and replacing a run ------------------------------------------------------------

    def is_run(self) -> bool:
        """Whether this tool wrote the directory: its run.json holds the mark (or, for a run made
        before the mark, what every earlier version wrote there, beside a config.yaml)."""
        try:
            info = json.loads(self.info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(info, dict) and (info.get("tool") == MARK["tool"] or
                                           LEGACY_INFO <= info.keys() and self.config.exists())

    def create(self, overwrite: bool) -> None:
        """Make a fresh run dir and lock it; with overwrite, replace the run in it. The replaced
        run's files are kept in .replaced/ until the new run saves its first checkpoint. A run to be
        replaced is locked before anything else: while another process trains it, nothing is touched."""
        if overwrite:
            _check_replaceable(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run dir {self.path} exists and is not a directory")
        if overwrite and self.is_run() or self._stranded():
            self.lock()  # puts back a run that an --overwrite stopped during its setup had set aside
        existing = self.path.exists() and any(p.name != self.lock_file.name for p in self.path.iterdir())
        if existing and not overwrite:
            raise UserError(f"run dir {self.path} already exists: use --resume to continue it "
                            "or --overwrite to replace it")
        if existing and not self.is_run():
            raise UserError(f"{self.path} is not empty and not a run dir (no run.json with this tool's mark): "
                            "--overwrite replaces run dirs only")
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create run dir {self.path}: {e.strerror}") from None
        if self._lock is None:
            self.lock()
        self.created = created  # from here on, abandon() undoes what this process did
        if existing:
            self.replaced.mkdir()
            for part in self._parts():
                part.rename(self.replaced / part.name)
        self.update_info()  # the mark first: a run cut short from here on is one --overwrite replaces
        self.checkpoints.mkdir()

    def drop_replaced(self) -> None:
        """The new run has a checkpoint: the run it replaced goes."""
        if self.replaced.exists():
            shutil.rmtree(self.replaced, ignore_errors=True)

    def abandon(self) -> str | None:
        """Undo create() for a run that failed before its first checkpoint: remove what it wrote
        and put back the run it replaced (or, where it replaced none, its lock and the directory
        if create() made it). Only the process that holds the lock and made the run does this;
        returns what is left, or None where there was nothing to undo."""
        if self._lock is None or self.created is None or self.checkpoint("last").exists():
            return None
        if self.replaced.exists():
            self._put_back()
            return f"the run it replaced is back in {self.path}"
        for part in self._parts():
            _remove(part)
        self.lock_file.unlink(missing_ok=True)  # still held: no other process took it meanwhile
        if self.created:
            with contextlib.suppress(OSError):  # something else was put in it meanwhile: it stays
                self.path.rmdir()
        return "nothing of it was kept"

    def _stranded(self) -> bool:
        """Whether .replaced/ holds a run set aside by an --overwrite (whose process may be gone)."""
        return RunDir(self.replaced).is_run()

    def _recover(self) -> None:
        """Called with the lock held: a run set aside by an --overwrite whose process died before the
        new run's first checkpoint (a SIGKILL, a power cut) is put back; once the new run has its
        checkpoint, the old one is stale and goes."""
        if not self._stranded():
            return
        if self.checkpoint("last").exists():
            self.drop_replaced()
            return
        self._put_back()
        print(f"note: {self.path} holds again the run that an --overwrite stopped during its setup had set "
              f"aside in {self.replaced}", file=sys.stderr)

    def _put_back(self) -> None:
        """Replace the run's entries by those kept in .replaced/."""
        for part in self._parts():
            _remove(part)
        for part in self.replaced.iterdir():
            part.rename(self.path / part.name)
        self.replaced.rmdir()

    def _parts(self) -> list[Path]:
        return [p for p in (self.path / name for name in PARTS) if p.exists() or p.is_symlink()]

    # -- one trainer at a time -----------------------------------------------------------------

    def lock(self) -> None:
        """Hold train.lock for the life of this process (or until unlock()): a second trainer of
        the run is refused. An OS lock, released by the kernel when the process dies."""
        try:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise UserError(f"cannot lock {self.lock_file}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder(fd) if isinstance(e, BlockingIOError) else None
            os.close(fd)
            if holder is not None:
                raise UserError(f"run {self.path} is being trained by process {holder}: one trainer per run; "
                                "wait for it to end or stop it") from None
            raise UserError(f"cannot lock {self.lock_file}: {e.strerror}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode())
        self._lock = fd
        self._recover()

    def unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    # -- reading and writing -------------------------------------------------------------------

    def require(self) -> None:
        if self._stranded() and self._lock is None:  # nobody trains it: put the run set aside back
            self.lock()
            self.unlock()
        if not self.config.exists():
            if self.is_run():
                raise UserError(f"run {self.path} was stopped while it was being set up (no config.yaml): "
                                "train it again with --overwrite")
            raise UserError(f"{self.path} is not a run dir (no config.yaml)")

    def write_config(self, config: Config) -> None:
        atomic_write_text(self.config, yaml.safe_dump(config.to_dict(), sort_keys=False))

    def read_config(self) -> Config:
        self.require()
        return Config.from_dict(read_yaml(self.config), where=str(self.config), saved=True)

    def read_info(self) -> dict:
        return read_json_object(self.info) if self.info.exists() else {}

    def read_export(self) -> dict | None:
        """An exported model's export.json, or None for a run trained here."""
        if not self.export_info.exists():
            return None
        info = read_json_object(self.export_info)
        if info.get("export_format") != EXPORT_MARK["export_format"]:
            return None
        check_fields(info, EXPORT_FIELDS, str(self.export_info))
        missing = [key for key in EXPORT_FIELDS if key not in info]
        if missing:
            raise UserError(f"{self.export_info} lacks {', '.join(missing)}: export the run again")
        return info

    def update_info(self, **fields) -> None:
        atomic_write_json(self.info, {**MARK, **self.read_info(), **fields})

    def add_command(self, command: str) -> None:
        """Record one more command that trained the run: `commands` holds every one, `command` the
        latest (runs made before `commands` kept only `command`, which starts their list)."""
        info = self.read_info()
        earlier = info.get("commands", [info["command"]] if "command" in info else [])
        self.update_info(command=command, commands=[*earlier, command])

    def read_metrics(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        records = []
        for number, line in enumerate(self.metrics.read_text(encoding="utf-8", errors="replace").split("\n"), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a killed process: skipped
                continue
            if isinstance(record, dict):
                check_fields(record, METRIC_TYPES, f"{self.metrics} line {number}")
                if missing := [key for key in METRIC_REQUIRED if key not in record]:
                    raise UserError(f"{self.metrics} line {number}: no {' and no '.join(missing)}")
                records.append(record)
        return records

    def drop_metrics_after(self, step: int) -> int:
        """Drop the records past `step`, written by a process stopped before it saved the checkpoint
        that followed them; returns how many."""
        records = self.read_metrics()
        kept = [r for r in records if r.get("step", 0) <= step]
        if len(kept) < len(records):
            atomic_write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in kept))
        return len(records) - len(kept)


def check_output(path: Path, option: str) -> None:
    """A file a command is asked to write (a report, a figure) is never inside a run dir: there it
    could replace one of the run's own files (a checkpoint, run.json), which training and eval alone
    write."""
    target = Path(path).resolve()
    for place in (target, *target.parents):
        if RunDir(place).is_run():
            raise UserError(f"refusing to write {path} ({option}): it is inside run dir {place}, whose files "
                            "are the run's own; write it elsewhere")


def _check_replaceable(path: Path) -> None:
    """--overwrite never replaces a symbolic link, the current or home directory, a directory
    holding either, or one holding this tool's checkout."""
    if path.is_symlink():
        raise UserError(f"run dir {path} is a symbolic link (to {path.resolve()}): --overwrite replaces "
                        "a real directory only; name that directory instead")
    target = path.resolve()
    for place, what in ((Path.cwd(), "the current directory"), (Path.home().resolve(), "the home directory"),
                        (CHECKOUT, "this tool's checkout")):
        if target == place or target in place.parents:
            relation = "is" if target == place else "holds"
            raise UserError(f"refusing --overwrite of {path}: it {relation} {what}; name the run's own directory")


def _holder(fd: int) -> str:
    """What the lock's holder wrote into it: its PID and host (given a moment to write them)."""
    for _ in range(20):
        said = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip()
        if said:
            return said
        time.sleep(0.05)
    return "(unknown)"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def check_which(which: str) -> str:
    """A checkpoint's name as --checkpoint takes it."""
    if which not in ("best", "last", "avg"):
        raise UserError(f"--checkpoint must be best, last or avg, got {which!r}")
    return which
