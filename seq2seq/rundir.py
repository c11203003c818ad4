"""Making, replacing and locking a run dir; its files are runfiles.py's.

    train.lock         locked by the one process that trains the run, for as long as it lives
    .replaced/         with --overwrite, the run being replaced, until the new one saves its
                       first checkpoint; put back where the new one stops before that (a process
                       killed outright leaves it to the next one that locks the run)

A directory is a run dir when its run.json holds the mark; --overwrite replaces only a run's
entries (PARTS), never anything else a user keeps beside them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from seq2seq.errors import UserError
from seq2seq.runfiles import RunFiles

PARTS = ("run.json", "config.yaml", "spm.model", "metrics.jsonl", "train.log", "checkpoints", "tensorboard", "eval")
CHECKOUT = Path(__file__).resolve().parents[1]

class RunDir(RunFiles):
    def __init__(self, path: str | Path):
        super().__init__(path)
        self.lock_file = self.path / "train.lock"
        self.replaced = self.path / ".replaced"
        self.created: bool | None = None  # set by create(): whether it made the directory
        self._lock: int | None = None

    # -- making and replacing a run ------------------------------------------------------------

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

    def saved(self, which: str, step: int) -> None:
        """checkpoints/<which>.pt now holds `step`: run.json says so (compare reads it there), and
        the run this one replaced goes."""
        self.update_info(**{f"{which}_step": step})
        self.drop_replaced()

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

    def require(self) -> None:
        if self._stranded() and self._lock is None:  # nobody trains it: put the run set aside back
            self.lock()
            self.unlock()
        super().require()


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

