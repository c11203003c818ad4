"""Parallel data: load a dataset (hub id or local directory), map its columns, clean it.

Training data stays in Arrow tables (datasets.Dataset, memory-mapped from the datasets cache
for hub and JSON data), so that millions of pairs never become Python objects all at once;
the small validation and test splits are read as lists of (source, target) pairs.

Two column shapes are understood, the two the hub uses for translation data:
flat language columns (`{"de": ..., "en": ...}`, as in bentrevett/multi30k) and one
`translation` column holding a dict (`{"translation": {"de": ..., "en": ...}}`, as in
wmt/wmt14). A local directory may also hold plain parallel text files, one sentence a line
(`train.de` beside `train.en`, and likewise for `validation` or `val`, and `test`).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from seq2seq.config import DataConfig
from seq2seq.errors import UserError, first_line
from seq2seq.local_dataset import SPLIT_ALIASES, Pair, bad_row, kind, read_parallel_text, split_sources

SPLITS = ("train", "validation", "test")


@dataclass
class Cleaned:
    pairs: list[Pair]
    dropped_empty: int
    dropped_long: int


def load_split(cfg: DataConfig, split: str) -> list[Pair]:
    """All (source, target) pairs of one split, as the dataset holds them."""
    table = load_table(cfg, split)
    return _read_utf8(cfg, split, lambda: list(zip(table["src"], table["tgt"])))


def load_table(cfg: DataConfig, split: str):
    """One split as an Arrow table with string columns `src` and `tgt`."""
    import datasets

    datasets.disable_progress_bars()
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    path = _local_path(cfg.dataset)
    if path is not None and not path.is_dir():
        raise UserError(f"dataset directory not found: {cfg.dataset}")
    text_files = split_sources(path, split, cfg) if path is not None else None
    if text_files:
        pairs = read_parallel_text(*text_files)
        return datasets.Dataset.from_dict({"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]})
    rows = _load_hub_split(cfg, split, local=path)
    return _read_utf8(cfg, split, lambda: _map_columns(rows, cfg, split, local=path))


def clean_table(table, max_words: int) -> tuple[object, int, int]:
    """clean() for an Arrow table: returns the kept table and the counts dropped as empty and as long."""
    import numpy as np

    marked = table.map(_clean_batch, batched=True, fn_kwargs={"max_words": max_words})
    kept = marked.filter(lambda b: [not why for why in b["dropped"]], batched=True).remove_columns("dropped")
    _, empty, long = np.bincount(marked.with_format("numpy")["dropped"], minlength=3)
    return kept, int(empty), int(long)


def augment_table(table, max_k: int):
    """The training pairs and, for each k from 2 to max_k, their runs of k consecutive pairs joined
    (concatenate()), for an Arrow table: data.concat_k's augmentation."""
    import datasets

    joined = [table.map(_join_batch, batched=True, batch_size=k * 1000, fn_kwargs={"k": k})
              for k in range(2, max_k + 1)]
    return datasets.concatenate_datasets([table, *joined]) if joined else table


def _join_batch(batch: dict, k: int) -> dict:
    """Consecutive pairs joined k at a time; batches hold a multiple of k pairs, so the groups
    are the same as concatenate()'s."""
    pairs = concatenate(list(zip(batch["src"], batch["tgt"])), k)
    return {"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]}


def _read_utf8(cfg: DataConfig, split: str, read):
    """read(), with text that is not UTF-8 (which datasets finds lazily, on first access) one clear error."""
    try:
        return read()
    except UnicodeDecodeError as e:  # datasets decodes lazily, on first access
        raise UserError(f"dataset {cfg.dataset} ({split}) is not valid UTF-8 ({e.reason})") from None


def clean(pairs: list[Pair], max_words: int) -> Cleaned:
    """Strip whitespace; drop pairs with an empty side or a side longer than max_words."""
    marked = _clean_batch({"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]}, max_words)
    kept = [(s, t) for s, t, why in zip(marked["src"], marked["tgt"], marked["dropped"]) if not why]
    return Cleaned(kept, marked["dropped"].count(EMPTY), marked["dropped"].count(LONG))


EMPTY, LONG = 1, 2  # why cleaning drops a pair (0: it keeps it)


def _clean_batch(batch: dict, max_words: int) -> dict:
    """The cleaning of clean() and clean_table(), written once: each pair's sides with their
    whitespace normalized, and why it is dropped (`dropped`: 0, EMPTY or LONG)."""
    src, tgt = [_normalize(s) for s in batch["src"]], [_normalize(t) for t in batch["tgt"]]
    dropped = [EMPTY if not s or not t else LONG if len(s.split()) > max_words or len(t.split()) > max_words else 0
               for s, t in zip(src, tgt)]
    return {"src": src, "tgt": tgt, "dropped": dropped}


NO_LIMIT = 10**9  # evaluation keeps every non-empty pair, however long


def split_pairs(data: DataConfig, split: str) -> list[Pair]:
    """The pairs of a split as evaluation scores them: cleaned, none dropped for its length."""
    pairs = clean(load_split(data, split), NO_LIMIT).pairs
    if not pairs:
        raise UserError(f"dataset {data.dataset} has no {split} pairs")
    return pairs


def concatenate(pairs: list[Pair], k: int) -> list[Pair]:
    """Join each run of k consecutive pairs into one pair (the last, shorter run is kept)."""
    return [(" ".join(s for s, _ in pairs[i:i + k]), " ".join(t for _, t in pairs[i:i + k]))
            for i in range(0, len(pairs), k)]


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def dataset_location(name: str | None) -> str | None:
    """A local dataset directory as an absolute path, so that a run's config finds it from any
    working directory; a hub id as given."""
    path = _local_path(name) if name else None
    return str(path.resolve()) if path is not None and path.is_dir() else name


def _local_path(name: str) -> Path | None:
    """The directory a dataset name points at, or None for a hub id (`user/name`)."""
    path = Path(os.path.expanduser(name))
    return path if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 else None


def fingerprint(table, pairs: list[Pair]) -> str:
    """A hash of the pairs of a table (string columns src, tgt), then of a list, in order: the same
    data has the same fingerprint wherever it lives. Cleaned text holds no tab or newline."""
    h = hashlib.sha256()
    for batch in table.with_format("arrow").iter(batch_size=10_000):
        h.update(_as_lines(zip(batch["src"].to_pylist(), batch["tgt"].to_pylist())))
    h.update(b"\0")
    h.update(_as_lines(pairs))
    return h.hexdigest()[:16]


def _as_lines(pairs) -> bytes:
    return "".join(f"{s}\t{t}\n" for s, t in pairs).encode("utf-8")


def _load_hub_split(cfg: DataConfig, split: str, local: Path | None):
    import datasets
    import huggingface_hub

    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its errors are ours to say, in one line
    huggingface_hub.utils.logging.set_verbosity_error()
    try:
        splits = datasets.load_dataset(cfg.dataset, cfg.dataset_config)
    except Exception as e:  # datasets raises many kinds: no network, bad files, bad config
        reason = first_line(e)
        if local and (bad := bad_row(local, cfg, split)):
            raise UserError(bad) from None
        if local:
            empty = sorted(p.name for p in local.iterdir() if p.is_file() and p.stat().st_size == 0)
            if empty:
                reason += f" ({', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty)"
            raise UserError(f"cannot load dataset {cfg.dataset}: {reason}") from None
        raise UserError(f"cannot load {cfg.dataset!r} from the Hugging Face hub ({reason}); with no network, "
                        "point at a local copy with --dataset PATH or the SEQ2SEQ_DATASET variable") from None
    name = next((n for n in SPLIT_ALIASES[split] if n in splits), None)
    if name is None:
        raise UserError(f"dataset {cfg.dataset} has no {split!r} split (it has: {', '.join(splits)})")
    return splits[name]


def _map_columns(rows, cfg: DataConfig, split: str, local: Path | None = None):
    """The rows' language columns as a table of `src` and `tgt`; a missing side becomes "", which
    cleaning then drops as empty, and a side that is not a sentence (a number, a list) is refused."""
    columns = rows.column_names
    s, t = cfg.src_lang, cfg.tgt_lang
    if s in columns and t in columns:
        def sides(b):
            return b[s], b[t]
    elif "translation" in columns:
        first = rows[0]["translation"] if len(rows) else {s: "", t: ""}
        if not isinstance(first, dict) or first.get(s) is None or first.get(t) is None:
            have = ", ".join(k for k, v in first.items() if v is not None) if isinstance(first, dict) else repr(first)
            raise UserError(f"dataset {cfg.dataset} ({split}): the translation column lacks "
                            f"{s!r} or {t!r} (it has {have})")

        def sides(b):
            return ([x.get(s) if isinstance(x, dict) else x for x in b["translation"]],
                    [x.get(t) if isinstance(x, dict) else x for x in b["translation"]])
    else:
        raise UserError(f"dataset {cfg.dataset} ({split}) has no {s!r} and {t!r} columns nor a 'translation' "
                        f"column (columns: {', '.join(columns)}); set --src-lang/--tgt-lang")

    def sentence(value: object, lang: str, row: int) -> str:
        if value is None or isinstance(value, str):
            return value or ""
        raise UserError((local and bad_row(local, cfg, split)) or
                        f"dataset {cfg.dataset} ({split}) row {row + 1}: {lang!r} is {kind(value)}, not a sentence")

    def to_pairs(b: dict, indices: list[int]) -> dict:
        src, tgt = sides(b)
        return {"src": [sentence(x, s, i) for x, i in zip(src, indices)],
                "tgt": [sentence(x, t, i) for x, i in zip(tgt, indices)]}

    return rows.map(to_pairs, batched=True, with_indices=True, remove_columns=columns)
