"""Parallel data: load a dataset (hub id or local directory), map its columns, clean it.

Two column shapes are understood, the two the hub uses for translation data:
flat language columns (`{"de": ..., "en": ...}`, as in bentrevett/multi30k) and one
`translation` column holding a dict (`{"translation": {"de": ..., "en": ...}}`, as in
wmt/wmt14). A local directory may also hold plain parallel text files, one sentence a line
(`train.de` beside `train.en`, and likewise for `validation` or `val`, and `test`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from seq2seq.config import DataConfig
from seq2seq.errors import UserError

SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {"validation": ("validation", "val", "valid", "dev"), "train": ("train",), "test": ("test",)}
Pair = tuple[str, str]  # (source, target)


@dataclass
class Cleaned:
    pairs: list[Pair]
    dropped_empty: int
    dropped_long: int


def load_split(cfg: DataConfig, split: str) -> list[Pair]:
    """All (source, target) pairs of one split, as the dataset holds them."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    path = Path(os.path.expanduser(cfg.dataset))
    looks_local = path.exists() or cfg.dataset.startswith((".", "/", "~")) or cfg.dataset.count("/") > 1
    if looks_local and not path.is_dir():
        raise UserError(f"dataset directory not found: {cfg.dataset}")
    if looks_local and _text_files(path, split, cfg):
        return _read_parallel_text(*_text_files(path, split, cfg))
    rows = _load_hub_split(cfg, split, local=looks_local)
    try:
        return _map_columns(rows, cfg, split)
    except UnicodeDecodeError as e:  # datasets decodes lazily, on first access
        raise UserError(f"dataset {cfg.dataset} ({split}) is not valid UTF-8 ({e.reason})") from None


def clean(pairs: list[Pair], max_words: int) -> Cleaned:
    """Strip whitespace; drop pairs with an empty side or a side longer than max_words."""
    kept, empty, long = [], 0, 0
    for src, tgt in pairs:
        src, tgt = _normalize(src), _normalize(tgt)
        if not src or not tgt:
            empty += 1
        elif len(src.split()) > max_words or len(tgt.split()) > max_words:
            long += 1
        else:
            kept.append((src, tgt))
    return Cleaned(kept, empty, long)


def concatenate(pairs: list[Pair], k: int) -> list[Pair]:
    """Join each run of k consecutive pairs into one pair (the last, shorter run is kept)."""
    return [(" ".join(s for s, _ in pairs[i:i + k]), " ".join(t for _, t in pairs[i:i + k]))
            for i in range(0, len(pairs), k)]


def augment_with_concatenations(pairs: list[Pair], max_k: int) -> list[Pair]:
    """The pairs plus, for each k in 2..max_k, the pairs joined k at a time, so a model
    trained on them has seen sources as long as the concatenation probe will show it."""
    out = list(pairs)
    for k in range(2, max_k + 1):
        out += concatenate(pairs, k)
    return out


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _text_files(root: Path, split: str, cfg: DataConfig) -> tuple[Path, Path] | None:
    for name in _SPLIT_ALIASES[split]:
        src, tgt = root / f"{name}.{cfg.src_lang}", root / f"{name}.{cfg.tgt_lang}"
        if src.exists() or tgt.exists():
            if not (src.exists() and tgt.exists()):
                missing = tgt if src.exists() else src
                raise UserError(f"{missing} is missing: parallel text needs both {src.name} and {tgt.name}")
            return src, tgt
    return None


def _read_parallel_text(src_path: Path, tgt_path: Path) -> list[Pair]:
    src, tgt = _read_lines(src_path), _read_lines(tgt_path)
    if len(src) != len(tgt):
        raise UserError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}: "
                        "parallel files must have one sentence per line, aligned")
    return list(zip(src, tgt))


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def _load_hub_split(cfg: DataConfig, split: str, local: bool):
    import datasets
    import huggingface_hub

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    huggingface_hub.utils.logging.set_verbosity_error()
    try:
        splits = datasets.load_dataset(cfg.dataset, cfg.dataset_config)
    except Exception as e:  # datasets raises many kinds: no network, bad files, bad config
        reason = _first_line(e)
        if local:
            raise UserError(f"cannot load dataset {cfg.dataset}: {reason}") from None
        raise UserError(f"cannot load {cfg.dataset!r} from the Hugging Face hub ({reason}); with no network, "
                        "point at a local copy with --dataset PATH or the SEQ2SEQ_DATASET variable") from None
    name = next((n for n in _SPLIT_ALIASES[split] if n in splits), None)
    if name is None:
        raise UserError(f"dataset {cfg.dataset} has no {split!r} split (it has: {', '.join(splits)})")
    return splits[name]


def _map_columns(rows, cfg: DataConfig, split: str) -> list[Pair]:
    columns = rows.column_names
    s, t = cfg.src_lang, cfg.tgt_lang
    if s in columns and t in columns:
        return list(zip(rows[s], rows[t]))
    if "translation" in columns:
        pairs = []
        for item in rows["translation"]:
            if not isinstance(item, dict) or s not in item or t not in item:
                raise UserError(f"dataset {cfg.dataset} ({split}): the translation column lacks "
                                f"{s!r} or {t!r} (it has {', '.join(item) if isinstance(item, dict) else item!r})")
            pairs.append((item[s], item[t]))
        return pairs
    raise UserError(f"dataset {cfg.dataset} ({split}) has no {s!r} and {t!r} columns nor a 'translation' "
                    f"column (columns: {', '.join(columns)}); set --src-lang/--tgt-lang")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
