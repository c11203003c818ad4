"""Training luck: the runs of one setup trained with several seeds make one row, their mean
for every figure with the spread across seeds, each seed's p-value against the baseline's run
of the same seed, and `real` where every seed agrees."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from seq2seq.metrics import finite_bound, ratio_interval
from seq2seq.rundir import RunDir
from seq2seq.runfiles import read_report
from seq2seq.tables import find

def setups(rows: list[dict]) -> tuple[list[int], list[int]]:
    """Which runs are one setup trained with several seeds: for each row, the index of the first
    row of its setup, the runs with the same study variant, engine and quantization (an exported
    model is a setup of its own) and a config that differs only in train.seed, each seed once (a
    run given twice, or trained twice with one seed, is a setup of its own); and each row's seed."""
    keys, seeds, setup = [], [], []
    for row in rows:
        config = RunDir(row["run"]).read_config().to_dict()
        seeds.append(config["train"].pop("seed"))
        engine = [row.get("engine", "pytorch"), row.get("quantization")]
        keys.append(json.dumps([row.get("variant"), engine, config], sort_keys=True, default=str))
        i = len(keys) - 1
        setup.append(next((j for j in dict.fromkeys(setup) if keys[j] == keys[i] and
                           seeds[i] not in [seeds[m] for m in range(i) if setup[m] == j]), i))
    return setup, seeds


def seed_baselines(setup: list[int], seeds: list[int], base: int) -> list[int | None]:
    """Each run's baseline: the run of the baseline's setup trained with the same seed (else the
    baseline run itself); None for the runs of the baseline's setup."""
    mine = {seeds[i]: i for i in range(len(setup)) if setup[i] == setup[base]}
    return [None if setup[i] == setup[base] else mine.get(seeds[i], base) for i in range(len(setup))]


def group_seeds(rows: list[dict], setup: list[int], groups: list[dict | None]) -> list[dict]:
    """One row per setup, in the order of its first run: a setup of one run is its row (with
    seeds 1), one of several runs their mean for every figure, with the spread across seeds
    (`*_sd`, their sample standard deviation) instead of bootstrap intervals, each seed's p-value
    (`p_values`), and `real`: whether every seed differs from the baseline in the same direction
    with p < REAL_P. Its ratio of the largest k to k=1 is the seeds' mean, with the paired
    interval over the same resampled groups for every seed (metrics.ratio_interval)."""
    out = []
    for first in dict.fromkeys(setup):
        members = [i for i in range(len(rows)) if setup[i] == first]
        if len(members) == 1:
            out.append(rows[first] | {"seeds": 1, "runs": [rows[first]["run"]]})
            continue
        runs = [rows[i] for i in members]
        row = {key: rows[first][key] for key in ("run", "report", "variant", "model", "engine", "quantization",
                                                 "params", "dataset", "checkpoint", "beam", "n")}
        row |= {"runs": [r["run"] for r in runs], "seeds": len(runs)}
        row |= {key: _mean([r[key] for r in runs]) for key in ("steps", "step", "train_seconds", "val_bleu")}
        row |= _seed_figures(runs, ("bleu", "chrf", "nll", "len_ratio"))
        row["buckets"] = [parts[0] | _seed_figures(parts) for parts in zip(*(r["buckets"] for r in runs))]
        row["concat"] = [parts[0] | _seed_figures(parts) | {"position_nll": _mean_lists([p.get("position_nll")
                                                                                         for p in parts])}
                         for parts in zip(*(r["concat"] for r in runs))]
        row["k_ratio"] = _seed_ratio(runs, [groups[i] for i in members])
        out.append(row)
    return out


REAL_P = 0.01  # a difference is called real where every seed's p-value is below this


def _seed_figures(parts: list[dict], keys: tuple[str, ...] = ("bleu", "nll", "len_ratio")) -> dict:
    out: dict = {"ci_low": None, "ci_high": None, "nll_ci_low": None, "nll_ci_high": None}
    for key in keys:
        values = [p.get(key) for p in parts]
        out[key] = _mean(values)
        out[f"{key}_sd"] = None if out[key] is None else round(statistics.stdev(values), 3)
    ps, deltas = [p.get("p_value") for p in parts], [p.get("bleu_delta") for p in parts]
    if all(p is not None for p in ps):
        same_way = all(d > 0 for d in deltas) or all(d < 0 for d in deltas)
        out |= {"p_value": None, "p_values": ps, "bleu_delta": _mean(deltas),
                "real": same_way and all(p < REAL_P for p in ps)}
    return out


def _seed_ratio(runs: list[dict], groups: list[dict | None]) -> dict | None:
    ratios = [r["k_ratio"] for r in runs]
    if any(r is None for r in ratios) or len({r["k"] for r in ratios}) != 1:
        return None
    k = ratios[0]["k"]
    resamples = min(_bootstrap(r) for r in runs)
    interval = ratio_interval([g["all"] for g in groups], [g[f"k={k}"] for g in groups], k, resamples) \
        if all(groups) else None
    low, high = interval or (None, None)
    # the mean of the seeds' unrounded ratios
    mean = statistics.mean(100 * find(r["concat"], "k", k)["bleu"] / r["bleu"] for r in runs)
    return {"k": k, "ratio": round(mean, 1), "ratio_sd": round(statistics.stdev(x["ratio"] for x in ratios), 1),
            "ci_low": finite_bound(low), "ci_high": finite_bound(high)}


def _bootstrap(row: dict) -> int:
    return read_report(Path(row["report"]), f"run `seq2seq eval {row['run']}` again").bootstrap


def _mean(values: list) -> float | None:
    return None if any(v is None for v in values) else round(statistics.mean(values), 3)


def _mean_lists(lists: list[list | None]) -> list | None:
    """Elementwise mean of equally long lists (None where a run lacks a value)."""
    if any(values is None for values in lists):
        return None
    return [_mean(list(column)) for column in zip(*lists)]


