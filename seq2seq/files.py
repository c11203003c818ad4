"""Atomic file writes: write a temporary file beside the target, fsync, rename into place.

A process killed mid-write leaves the old file (or none), never half of a new one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import typing
from pathlib import Path
from typing import Callable, IO

from seq2seq.errors import UserError


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write in {path.parent}: {e.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as open() would make it, not mkstemp's owner-only 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        failure = _os_error(e)
        if failure is None:
            raise
        raise UserError(f"cannot write {path}: {failure.strerror}") from None


def _os_error(e: BaseException) -> OSError | None:
    """The OSError behind a failed write: the error itself, or one that a library's error came from
    (torch's writer reports a full disk as a RuntimeError raised while handling the OSError)."""
    while isinstance(e, Exception):
        if isinstance(e, OSError):
            return e
        e = e.__cause__ or e.__context__
    return None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def append_line(path: Path, line: str) -> None:
    """Append one whole line (metrics.jsonl, train.log): earlier lines are never rewritten; after
    a line cut short (a process killed mid-write), the new one starts on a line of its own."""
    try:
        with open(path, "ab+") as f:  # appends go to the end whatever the read position
            end = f.seek(0, os.SEEK_END)
            if end:
                f.seek(end - 1)
            cut_short = end > 0 and f.read(1) != b"\n"
            f.write((("\n" if cut_short else "") + line.rstrip("\n") + "\n").encode("utf-8"))
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None


def read_json_object(path: Path) -> dict:
    """A JSON file holding one object (run.json, eval reports), or one clear error."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} is not valid JSON (not an object)")
    return value


TYPE_NAMES = {int: "an integer", float: "a number", str: "text", bool: "true or false", list: "a list",
              dict: "an object", None: "null"}


def check_fields(obj: dict, types: dict[str, object], where: str) -> None:
    """One clear error for the first field of a JSON object whose value has the wrong type. A type
    is int, float (an int will do), str, bool, list, dict, None, or a tuple of them; absent fields pass."""
    for key, expected in types.items():
        kinds = expected if isinstance(expected, tuple) else (expected,)
        if key in obj and not any(_is(obj[key], kind) for kind in kinds):
            said = json.dumps(obj[key], ensure_ascii=False)
            raise UserError(f"{where}: {key} must be {' or '.join(TYPE_NAMES[k] for k in kinds)}, "
                            f"got {said if len(said) <= 40 else said[:37] + '...'}")


def _is(value: object, kind: object) -> bool:
    if kind is None:
        return value is None
    return type(value) in ((int, float) if kind is float else (kind,))  # type(): a bool is no number


# -- typed records (a dataclass per kind of file: runfiles.py) ------------------------------------------
# A field without a default must be in the file; one with a default may be absent.

def read_record(cls: type, raw: object, where: str, lacks: str = ""):
    """A record of class `cls` from a file's JSON object: each field of its type (nested records
    too), those without a default present; fields the record does not know are left out."""
    if not isinstance(raw, dict):
        raise UserError(f"{where} is not an object")
    check_fields(raw, _types(cls), where)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            if required(f):
                raise UserError(f"{where}: {lacks or 'no'} {f.name}")
            continue
        inner = typing.get_args(typing.get_type_hints(cls)[f.name])
        values[f.name] = raw[f.name]
        if inner and dataclasses.is_dataclass(inner[0]):
            values[f.name] = [_part(inner[0], part, f"{where}: {f.name}[{i}]") for i, part in enumerate(raw[f.name])]
    return cls(**values)


def _part(cls: type, raw: object, where: str):
    """A record nested in another (a report's bucket or probe)."""
    needed = [f.name for f in dataclasses.fields(cls) if required(f)]
    if not isinstance(raw, dict) or not set(needed) <= raw.keys():
        raise UserError(f"{where} must be an object with {', '.join(needed)}")
    return read_record(cls, raw, where)


def required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _types(cls: type) -> dict[str, object]:
    """Each field's JSON type as check_fields takes it: int, float, str, list, dict, or a tuple with None."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        kinds = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, type(int | None)) else [hint]
        plain = tuple(typing.get_origin(kind) or kind for kind in kinds)
        out[name] = (*plain, None) if type(None) in typing.get_args(hint) else plain[0]
    return out
