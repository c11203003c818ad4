"""Differences between runs on the same test sentences: the paired bootstrap p-value of each
run's BLEU against its baseline's, overall, in each bucket and at each k, from the sentences'
statistics that eval kept; and the check that the runs were evaluated on the same sentences."""

from __future__ import annotations

import sys
from pathlib import Path

from seq2seq.errors import UserError
from seq2seq.metrics import bleu_from_stats, paired_bootstrap
from seq2seq.runfiles import read_sentences, sentences_path

PAIRED_RESAMPLES = 1000  # sacreBLEU's default for its paired bootstrap test


def baseline_index(run_dirs: list[str | Path], baseline: str | Path) -> int:
    """Where the baseline is among the runs compared."""
    runs = [Path(r).resolve() for r in run_dirs]
    if Path(baseline).resolve() not in runs:
        raise UserError(f"--baseline {baseline} is not among the runs compared")
    return runs.index(Path(baseline).resolve())


def add_p_values(rows: list[dict], bases: list[int | None], groups: list[dict | None]) -> None:
    """Give each row, overall, in each bucket and each k, the paired-bootstrap p-value of its BLEU
    against that of its baseline run rows[bases[i]] on the same sentences (`p_value`), and the
    difference (`bleu_delta`), from the rows' sentence_groups: None for a baseline run itself, and
    where a report of an older version lacks the sentences' statistics (with a warning)."""
    same_test_sentences(rows, groups, "--baseline")
    for row, found in zip(rows, groups):
        if found is None:
            print(f"warning: {row['run']} has no {sentences_path(Path(row['report'])).name} (evaluated by an older "
                  f"version): no p-values for it; run `seq2seq eval {row['run']}` again", file=sys.stderr)
    for i, row in enumerate(rows):
        base = bases[i]
        for part, key in [(row, "all")] + [(b, b["range"]) for b in row["buckets"]] + \
                         [(c, f"k={c['k']}") for c in row["concat"]]:
            a, b = (groups[base] or {}).get(key, []) if base is not None else [], (groups[i] or {}).get(key, [])
            paired = base is not None and len(a) == len(b) > 0
            part["p_value"] = round(paired_bootstrap(a, b, PAIRED_RESAMPLES), 4) if paired else None
            part["bleu_delta"] = round(bleu_from_stats(b) - bleu_from_stats(a), 2) if paired else None


def sentence_groups(rows: list[dict]) -> list[dict[str, list[list[int]]] | None]:
    """Each row's per-sentence BLEU statistics by figure (report_groups), read once for all
    that pairs the runs' sentences."""
    return [report_groups(Path(row["report"]), row["run"]) for row in rows]


def report_groups(report: Path, run_dir: str | Path) -> dict[str, list[list[int]]] | None:
    """The per-sentence BLEU statistics of a run's report by the figure they make: "all", each
    bucket's range, and "k=K"; None for a report written before they were kept."""
    sentences = read_sentences(report, Path(run_dir))
    if sentences is None:
        return None
    groups: dict[str, list[list[int]]] = {}
    for s in sentences:
        for key in [f"k={s.k}"] + (["all", s.range] if s.k == 1 else []):
            groups.setdefault(key, []).append(s.bleu_stats)
    return groups


def same_test_sentences(rows: list[dict], groups: list[dict | None], option: str) -> None:
    """Paired figures need the same test sentences in every run: each is checked against the first."""
    for row, found in zip(rows[1:], groups[1:]):
        difference = mismatched_test_set(rows[0], groups[0], row, found)
        if difference:
            raise UserError(f"{option} pairs the runs' test sentences, but {rows[0]['run']} and {row['run']} were "
                            f"evaluated on different ones ({difference})")


def mismatched_test_set(first: dict, first_groups: dict | None, row: dict, groups: dict | None) -> str | None:
    """Where a row's test sentences differ from the first row's, or None: where both kept their
    sentences' statistics, by their references' lengths, sentence by sentence (so the same data
    read from two places is the same); otherwise by the dataset their reports name."""
    if first_groups is not None and groups is not None:
        return _first_difference(first_groups, groups)
    if row["dataset"] != first["dataset"]:
        return f"{first['dataset']}, {row['dataset']}"
    return None


def _first_difference(a: dict[str, list[list[int]]], b: dict[str, list[list[int]]]) -> str | None:
    """Where two runs' references first differ in length (bleu_stats[1]): in the whole test set,
    then at each k both report."""
    for key in ["all"] + sorted(key for key in set(a) & set(b) if key.startswith("k=")):
        ref_a, ref_b = [stats[1] for stats in a.get(key, [])], [stats[1] for stats in b.get(key, [])]
        unit, at = ("test sentence", "") if key == "all" else ("joined pair", f" at {key}")
        if len(ref_a) != len(ref_b):
            return f"{len(ref_a)} and {len(ref_b)} {unit}s{at}"
        i = next((i for i, (x, y) in enumerate(zip(ref_a, ref_b)) if x != y), None)
        if i is not None:
            return f"{unit} {i + 1}{at}: references of {ref_a[i]} and {ref_b[i]} tokens"
    return None


