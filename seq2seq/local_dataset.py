"""A dataset in a local directory: its plain parallel text files (`train.de` beside `train.en`),
the data files datasets takes for a split, and the rows of JSON Lines data checked as sentence
pairs, so that a bad row is one line naming its file and line (datasets would say less, or
make text of a number).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from seq2seq.config import DataConfig
from seq2seq.errors import UserError

# The names that make a file one split's, as datasets reads a local directory (its SPLIT_KEYWORDS)
SPLIT_ALIASES = {"train": ("train", "training"), "validation": ("validation", "val", "valid", "dev"),
                 "test": ("test", "testing", "eval", "evaluation")}
_SEPARATORS = "-._ 0-9"  # what may stand beside such a name in a file name (datasets' NON_WORDS_CHARS)
Pair = tuple[str, str]  # (source, target)


def split_sources(root: Path, split: str, cfg: DataConfig) -> tuple[Path, Path] | None:
    """The parallel text files of a split in a local dataset dir, or None where datasets reads its
    data files (each row of their JSON Lines checked as a sentence pair first: datasets would make
    text of a number in a split after the first). Two sources for one split (val.jsonl beside
    validation.jsonl, train.de/train.en beside train.jsonl) are a mistake in the input: refused."""
    texts = []
    for name in SPLIT_ALIASES[split]:
        src, tgt = root / f"{name}.{cfg.src_lang}", root / f"{name}.{cfg.tgt_lang}"
        if src.exists() or tgt.exists():
            if not (src.exists() and tgt.exists()):
                missing = tgt if src.exists() else src
                raise UserError(f"{missing} is missing: parallel text needs both {src.name} and {tgt.name}")
            texts.append((src, tgt))
    files = _data_files(root, split, cfg)
    sources = [f"{src.name} with {tgt.name}" for src, tgt in texts] + [", ".join(p.name for p in group)
                                                                         for group in files.values()]
    if len(sources) > 1:
        raise UserError(f"dataset {cfg.dataset} has two sources for its {split} split ({sources[0]}, and "
                        f"{sources[1]}): keep one")
    for path in (p for group in files.values() for p in group if p.suffix == ".jsonl"):
        if bad := _bad_row_of(path, cfg):
            raise UserError(bad)
    return texts[0] if texts else None


def _data_files(root: Path, split: str, cfg: DataConfig) -> dict[str, list[Path]]:
    """The files under root that datasets takes for the split, by the name in theirs that makes
    them so ("val" for val.jsonl, "train" for data/train-00000-of-00002.parquet); hidden files,
    README.md and parallel text aside."""
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if not path.is_file() or any(part.startswith(".") for part in parts) or path.name == "README.md" \
                or path.suffix in (f".{cfg.src_lang}", f".{cfg.tgt_lang}"):
            continue
        name = next((name for name in SPLIT_ALIASES[split] for part in parts
                     if re.search(rf"(^|[{_SEPARATORS}]){name}([{_SEPARATORS}]|$)", part)), None)
        if name is not None:
            found.setdefault(name, []).append(path)
    return found


def read_parallel_text(src_path: Path, tgt_path: Path) -> list[Pair]:
    src, tgt = _read_lines(src_path), _read_lines(tgt_path)
    if len(src) != len(tgt):
        raise UserError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}: "
                        "parallel files must have one sentence per line, aligned")
    return list(zip(src, tgt))


def _read_lines(path: Path) -> list[str]:
    """One sentence per line, lines ended by \n (a \r before it is dropped): a form feed, U+0085 or
    U+2028 inside a sentence is part of it, and the count is that of `wc -l` (plus a last line
    without \n)."""
    try:
        lines = path.read_bytes().decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if lines[-1] == "":
        lines.pop()  # the \n that ends the last line starts none
    return [line.removesuffix("\r") for line in lines]


def bad_row(local: Path, cfg: DataConfig, split: str) -> str | None:
    """Where local JSON Lines data goes wrong, as "FILE line N: what": the first row that is not
    JSON, not an object, or holds something other than a sentence (or null) for a language. The
    split's own files are read first."""
    for path in sorted(local.glob("*.jsonl"), key=lambda p: (not p.name.startswith(SPLIT_ALIASES[split]), p.name)):
        if bad := _bad_row_of(path, cfg):
            return bad
    return None


def _bad_row_of(path: Path, cfg: DataConfig) -> str | None:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):  # lines end at \n only, as in the JSON Lines format
            problem = _row_problem(raw, cfg)
            if problem:
                return f"{path} line {number}: {problem}"
    return None


def _row_problem(raw: bytes, cfg: DataConfig) -> str | None:
    if not raw.strip():
        return None
    try:
        row = json.loads(raw)
    except UnicodeDecodeError:
        return "not valid UTF-8"
    except json.JSONDecodeError as e:
        return f"not JSON ({e.msg} at column {e.colno})"
    if not isinstance(row, dict):
        return f"{kind(row)} where a JSON object should be"
    sides = row.get("translation", row)
    if not isinstance(sides, dict):
        return f"'translation' is {kind(sides)}, not an object"
    for lang in (cfg.src_lang, cfg.tgt_lang):
        if sides.get(lang) is not None and not isinstance(sides[lang], str):
            return f"{lang!r} is {kind(sides[lang])}, not a sentence"
    return None


def kind(value: object) -> str:
    kinds = {list: "an array", dict: "an object", str: "a string", bool: "true or false", int: "a number",
             float: "a number"}
    return kinds.get(type(value), type(value).__name__)
