"""Reports for people: the eval table, and the comparison of runs."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from seq2seq import checkpoint
from seq2seq.data import concatenate
from seq2seq.errors import UserError
from seq2seq.evaluate import hypotheses_path, report_path, sentences_path, split_pairs
from seq2seq.files import check_fields, read_json_object
from seq2seq.metrics import bleu_from_stats, paired_bootstrap, ratio_interval, sentence_bleu
from seq2seq.rundir import RunDir, check_which


def _ci(row: dict, digits: int = 2, prefix: str = "") -> str:
    """The 95% interval of the figure whose bounds are row[prefix + "ci_low"] and row[prefix + "ci_high"]."""
    low, high = row.get(f"{prefix}ci_low"), row.get(f"{prefix}ci_high")
    return f"[{low:.{digits}f}, {high:.{digits}f}]" if low is not None else ""


def _bleu(row: dict) -> str:
    return "-" if row["bleu"] is None else f"{row['bleu']:.2f}"


def _nll(row: dict, digits: int = 3) -> str:
    return "-" if row.get("nll") is None else f"{row['nll']:.{digits}f}"


def _steps(report: dict) -> str:
    """The step of the checkpoint a report scores; of an average, the steps it is the mean of."""
    averaged = report.get("averaged_steps")
    return f"the mean of steps {', '.join(map(str, averaged))}" if averaged else f"step {report['step']}"


def eval_table(report: dict) -> str:
    search = "greedy" if report["beam"] == 1 else f"beam {report['beam']}"
    engine = "" if report.get("engine", "pytorch") == "pytorch" else \
        f"  {report['engine']} {report['quantization']} (computing in {report['compute_type']})"
    lines = [f"{report['run']}  {report['model']}  {report['split']} ({report['n']} sentences)  "
             f"{report['checkpoint']} checkpoint, {_steps(report)}  {search}{engine}",
             f"BLEU {report['bleu']:.2f} {_ci(report)}  chrF {report['chrf']:.2f}  "
             f"reference NLL {_nll(report)} {_ci(report, 3, 'nll_')} nats/token  "
             f"length ratio {_number(report['len_ratio'], 3)}",
             f"  {report['signature']['bleu']}",
             f"  {report['signature']['chrf']}",
             "",
             f"{'source words':>14} {'n':>6} {'BLEU':>7}  {'95% interval':<16} {'NLL':>6}  {'95% interval':<16} "
             "length ratio"]
    for b in report["buckets"]:
        lines.append(f"{b['range']:>14} {b['n']:>6} {_bleu(b):>7}  {_ci(b):<16} {_nll(b):>6}  "
                     f"{_ci(b, 3, 'nll_'):<16} {_number(b['len_ratio'], 3):>12}")
    if any(c["k"] > 1 for c in report["concat"]):
        lines += ["", f"{'concat k':>14} {'n':>6} {'BLEU':>7}  {'95% interval':<16} {'NLL':>6}  {'95% interval':<16} "
                      "length ratio  mean source words"]
        for c in report["concat"]:
            lines.append(f"{c['k']:>14} {c['n']:>6} {_bleu(c):>7}  {_ci(c):<16} {_nll(c):>6}  "
                         f"{_ci(c, 3, 'nll_'):<16} {_number(c['len_ratio'], 3):>12}  {c['src_words']:.1f}")
    return "\n".join(lines)


# -- the comparison of runs ------------------------------------------------------------------------

FORMATS = ("table", "csv", "json", "markdown")
BUCKET_KEYS = ("range", "n", "bleu", "ci_low", "ci_high")
CONCAT_KEYS = ("k", "src_words", "n", "bleu", "ci_low", "ci_high")
# Figures that reports of older versions lack: None where they do, shown as blanks.
ADDED_KEYS = ("nll", "nll_ci_low", "nll_ci_high", "len_ratio")
REPORT_KEYS = ("model", "params", "checkpoint", "step", "beam", "n", "bleu", "ci_low", "ci_high", "chrf",
               "buckets", "concat")
FIELD_TYPES = {"model": str, "checkpoint": str, "range": str, "params": int, "step": int, "steps": (int, None),
               "beam": int, "n": int, "k": int, "bleu": (float, None), "ci_low": (float, None),
               "ci_high": (float, None), "chrf": float, "src_words": float, "train_seconds": (float, None),
               "best_val_bleu": (float, None), "buckets": list, "concat": list, "nll": (float, None),
               "nll_ci_low": (float, None), "nll_ci_high": (float, None), "len_ratio": (float, None),
               "position_nll": (list, None), "bootstrap": int, "command": str,
               "commands": list, "variant": (str, None)}  # of reports, their parts, run.json
TEXT_COLUMNS = ("run", "model", "engine")  # left-aligned; the figures are right-aligned
RATIO_KEYS = ("k", "ratio", "ci_low", "ci_high")
DEFAULT_BOOTSTRAP = 1000  # eval's resamples, for reports written before they recorded theirs


@dataclass
class Comparison:
    runs: list[dict]  # one row per run (load_comparison), with p-values where there is a baseline
    rows: list[dict]  # one row per setup: the runs of several seeds grouped (group_seeds)
    groups: list[dict | None]  # each run's sentence statistics (sentence_groups)


def compare_runs(run_dirs: list[str | Path], beam: int = 1, baseline: str | Path | None = None,
                 which: str = "best") -> Comparison:
    """The comparison of runs (their `which` checkpoints' reports): their rows, p-values against
    the baseline (each run against the baseline's run of its seed), and the runs of one setup
    grouped by seed."""
    base = baseline_index(run_dirs, baseline) if baseline is not None else None
    runs = load_comparison(run_dirs, beam, which)
    groups = sentence_groups(runs)
    setup, seeds = setups(runs)
    if base is not None:
        add_p_values(runs, seed_baselines(setup, seeds, base), groups)
    return Comparison(runs, group_seeds(runs, setup, groups), groups)


def load_comparison(run_dirs: list[str | Path], beam: int = 1, which: str = "best") -> list[dict]:
    """One row per run, from what training (run.json) and `seq2seq eval` (eval/test.json, or
    test.last.json, test.avg.json) wrote. Nothing is decoded again: comparing is cheap, and the
    figures are those the eval reported."""
    if beam < 1:
        raise UserError(f"--beam must be at least 1, got {beam}")
    check_which(which)
    return [comparison_row(run_dir, beam, which) for run_dir in run_dirs]


def comparison_row(run_dir: str | Path, beam: int = 1, which: str = "best") -> dict:
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise UserError(f"run dir not found: {run.path}")
    exported = run.read_export()  # an exported model's record holds what a run's run.json does
    path = report_path(run, "test", beam, which="best" if exported else which)
    again = ("" if beam == 1 else f" --beam {beam}") + ("" if which == "best" or exported else f" --checkpoint {which}")
    if not path.exists():
        raise UserError(f"run {run.path} has no {path.relative_to(run.path)}: "
                        f"run `seq2seq eval {run.path}{again}` first")
    report = read_json_object(path)
    missing = [key for key in REPORT_KEYS if key not in report]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: run `seq2seq eval {run.path}{again}` again")
    check_report(report, path)
    own = run.read_config().data.dataset
    if report.get("dataset", own) != own:
        raise UserError(f"{path} scores dataset {report['dataset']}, not the run's own {own}: "
                        f"run `seq2seq eval {run.path}{again}` again")
    scored = run.checkpoint(which)
    now = checkpoint.load(scored, mmap=True)["progress"]["step"] if scored.exists() and not exported \
        else report["step"]
    if now != report["step"]:
        print(f"warning: {path} scores the checkpoint of step {report['step']}, but the run's {which} checkpoint "
              f"is now of step {now}: run `seq2seq eval {run.path}{again}` again", file=sys.stderr)
    info = exported or run.read_info()
    check_fields(info, FIELD_TYPES, str(run.export_info if exported else run.info))
    return {"run": str(run.path), "report": str(path), "variant": info.get("variant"), "model": info.get("model", report["model"]),
            "engine": report.get("engine", "pytorch"), "quantization": report.get("quantization"),
            "params": info.get("params", report["params"]), "steps": info.get("steps"),
            "train_seconds": info.get("train_seconds"), "val_bleu": info.get("best_val_bleu"),
            "dataset": own,
            **{key: report[key] for key in ("checkpoint", "step", "beam", "n", "bleu", "ci_low", "ci_high", "chrf")},
            **_added(report),
            "buckets": [{key: b[key] for key in BUCKET_KEYS} | _added(b) for b in report["buckets"]],
            "concat": [{key: c[key] for key in CONCAT_KEYS} | _added(c, ("position_nll",)) for c in report["concat"]],
            "averaged_steps": report.get("averaged_steps"), "k_ratio": k_ratio(report, _sentence_groups(path, run.path))}


def k_ratio(report: dict, groups: dict[str, list[list[int]]] | None) -> dict | None:
    """BLEU at the largest k the report probes as a percentage of BLEU at k=1, with its bootstrap
    95% interval (metrics.ratio_interval: each resample draws joined pairs together with the
    sentences they join). None where the report probes no k > 1, where BLEU at k=1 is 0, and where the
    sentences' statistics are missing (reports of older versions); an interval bound is None where
    it is infinite (resamples of BLEU 0 at k=1), and both are None for --bootstrap 0."""
    k = max(c["k"] for c in report["concat"]) if report["concat"] else 1
    if k == 1 or not report["bleu"] or groups is None or _find(report["concat"], "k", k)["bleu"] is None:
        return None
    interval = ratio_interval([groups.get("all", [])], [groups.get(f"k={k}", [])], k,
                              report.get("bootstrap", DEFAULT_BOOTSTRAP))
    ratio = 100 * _find(report["concat"], "k", k)["bleu"] / report["bleu"]
    low, high = interval or (None, None)
    return {"k": k, "ratio": round(ratio, 1), "ci_low": _finite(low), "ci_high": _finite(high)}


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isinf(x) else round(x, 1)


def _added(part: dict, more: tuple[str, ...] = ()) -> dict:
    return {key: part.get(key) for key in ADDED_KEYS + more}


def check_report(report: dict, path: Path) -> None:
    """One clear error for a field of an eval report, or of its buckets and probes, of the wrong type."""
    check_fields(report, FIELD_TYPES, str(path))
    for key, keys in (("buckets", BUCKET_KEYS), ("concat", CONCAT_KEYS)):
        for i, part in enumerate(report[key]):
            if not isinstance(part, dict) or not set(keys) <= part.keys():
                raise UserError(f"{path}: {key}[{i}] must be an object with {', '.join(keys)}")
            check_fields(part, FIELD_TYPES, f"{path}: {key}[{i}]")


def render_comparison(rows: list[dict], fmt: str, columns: list[str] | None = None) -> str:
    """The rows as a table (aligned text or markdown, the columns named or all of them), CSV or JSON."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if columns and fmt in ("json", "csv"):
        raise UserError("--columns picks the columns of a table: use it with --format table or markdown")
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    if fmt == "csv":
        return comparison_csv(rows)
    header, body = _display_cells(rows)
    if columns:
        header, body = select_columns(header, body, columns)
    return comparison_markdown(header, body) if fmt == "markdown" else comparison_table(header, body)


def comparison_table(header: list[str], body: list[list[str]]) -> str:
    """Plain aligned text for a terminal: names to the left, figures to the right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *body)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if name in TEXT_COLUMNS else c.rjust(w)
                         for name, c, w in zip(header, cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(cells) for cells in body])


def comparison_markdown(header: list[str], body: list[list[str]]) -> str:
    rule = ["---" if name in TEXT_COLUMNS else "---:" for name in header]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
                     for cells in [header, rule, *body])


def comparison_csv(rows: list[dict]) -> str:
    """Raw numbers, one column per figure, for spreadsheets and scripts."""
    added = ADDED_KEYS + (("p_value",) if any("p_value" in row for row in rows) else ())
    engines = ("engine", "quantization") if any(row.get("engine", "pytorch") != "pytorch" for row in rows) else ()
    records = [_flat(row, _bucket_ranges(rows), _concat_ks(rows), added, engines) for row in rows]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]) if records else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().rstrip("\n")


def _display_cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The header and the cells shared by the terminal table and markdown. A bucket or k that a
    run did not evaluate, or a bucket without sentences, reads "-"."""
    columns = [("run", lambda r: r["variant"] if r.get("seeds", 1) > 1 and r.get("variant") else r["run"]),
               ("model", lambda r: r["model"])]
    if any(row.get("engine", "pytorch") != "pytorch" for row in rows):  # an exported model among the runs
        columns.append(("engine", _engine))
    if any(row.get("seeds", 1) > 1 for row in rows):
        columns.append(("seeds", lambda r: str(r.get("seeds", 1))))
    columns += [("params", lambda r: _count(r["params"])), ("steps", lambda r: _number(r["steps"])),
               ("eval step", lambda r: "mean of " + ", ".join(map(str, r["averaged_steps"])) if r.get("averaged_steps")
                else _number(r["step"])),
               ("train", lambda r: _duration(r["train_seconds"])), ("val BLEU", lambda r: _number(r["val_bleu"], 1)),
               ("test BLEU", _scored), ("chrF", lambda r: _number(r["chrf"], 1)), ("test NLL", _nll_cell),
               ("len ratio", lambda r: _number(r.get("len_ratio"), 2))]
    for label in _bucket_ranges(rows):
        columns.append((f"{label} words", lambda r, label=label: _scored(_find(r["buckets"], "range", label))))
    for k in _concat_ks(rows):
        columns.append((f"k={k}", lambda r, k=k: _scored(_find(r["concat"], "k", k))))
    ratio_ks = {row["k_ratio"]["k"] for row in rows if row.get("k_ratio")}
    if ratio_ks:
        header = f"k={min(ratio_ks)} / k=1" if len(ratio_ks) == 1 else "largest k / k=1"
        columns.append((header, lambda r: _ratio_cell(r.get("k_ratio"), len(ratio_ks) > 1)))
    for k in _concat_ks(rows):
        columns.append((f"NLL k={k}", lambda r, k=k: _nll_cell(_find(r["concat"], "k", k))))
    if len(ratio_ks) == 1:
        k = min(ratio_ks)
        columns.append((f"NLL rise k={k}", lambda r: _nll_rise(r, k)))
    return [name for name, _ in columns], [[cell(row) for _, cell in columns] for row in rows]


def _nll_rise(row: dict, k: int) -> str:
    """How much the reference's NLL per token grows from single sentences to k joined (nats)."""
    one, joined = _find(row["concat"], "k", 1), _find(row["concat"], "k", k)
    if not one or not joined or one.get("nll") is None or joined.get("nll") is None:
        return "-"
    return f"{joined['nll'] - one['nll']:+.2f}"


def select_columns(header: list[str], body: list[list[str]], names: list[str]) -> tuple[list[str], list[list[str]]]:
    """The columns named (by their headers), in that order; an unknown name is one line naming the others."""
    for name in names:
        if name not in header:
            raise UserError(f"--columns: no column {name!r} (the columns: {', '.join(header)})")
    index = [header.index(name) for name in names]
    return names, [[cells[i] for i in index] for cells in body]


def _flat(row: dict, ranges: list[str], ks: list[int], added: tuple[str, ...], engines: tuple[str, ...]) -> dict:
    record = {key: row.get(key) for key in ("run", "variant", "seeds", "model", *engines, "params", "steps",
                                            "train_seconds", "val_bleu", "bleu_sd",
                                            "checkpoint", "step", "beam", "n", "bleu", "ci_low", "ci_high", "chrf",
                                            *added)}
    for label in ranges:
        bucket = _find(row["buckets"], "range", label) or {}
        record |= {f"{key} {label}": bucket.get(key) for key in ("n", "bleu", "ci_low", "ci_high", *added)}
    for k in ks:
        probe = _find(row["concat"], "k", k) or {}
        record |= {f"{key} k={k}": probe.get(key) for key in ("src_words", "n", "bleu", "ci_low", "ci_high", *added)}
    ratio = row.get("k_ratio") or {}
    return record | {"k_ratio" if key == "ratio" else f"k_ratio {key}": ratio.get(key) for key in RATIO_KEYS}


def _engine(row: dict) -> str:
    return " ".join(c for c in (row["engine"], row["quantization"]) if c)


def _bucket_ranges(rows: list[dict]) -> list[str]:
    """Every bucket any run reports, in the order the runs report them."""
    return list(dict.fromkeys(b["range"] for row in rows for b in row["buckets"]))


def _concat_ks(rows: list[dict]) -> list[int]:
    return sorted({c["k"] for row in rows for c in row["concat"]})


def _find(items: list[dict], key: str, value) -> dict | None:
    return next((item for item in items if item[key] == value), None)


def _scored(part: dict | None) -> str:
    """BLEU with its interval (or, over seeds, its mean and spread), and its p-value against the
    baseline where there is one (over seeds, each seed's, and "real" where they all agree)."""
    if part is None or part["n"] == 0 or part["bleu"] is None:
        return "-"
    p, ps = part.get("p_value"), part.get("p_values")
    tested = "" if p is None else f"p={p:.3f}"
    if ps:
        tested = "p=" + "/".join(f"{x:.3f}" for x in ps) + (" real" if part["real"] else "")
    return " ".join(c for c in (f"{part['bleu']:.1f}", _spread(part, "bleu", 1) or _ci(part, 1), tested) if c)


def _spread(part: dict, key: str, digits: int) -> str:
    """± the spread across seeds of a figure, where the part is a mean over seeds."""
    sd = part.get(f"{key}_sd")
    return "" if sd is None else f"±{sd:.{digits}f}"


def _ratio_cell(ratio: dict | None, name_k: bool) -> str:
    """BLEU at the largest k as a percentage of BLEU at k=1 with its interval (an unbounded upper
    bound reads "inf"), and the k where the runs' largest k differ."""
    if ratio is None:
        return "-"
    interval = "" if ratio["ci_low"] is None else \
        f"[{ratio['ci_low']:.1f}, {'inf' if ratio['ci_high'] is None else format(ratio['ci_high'], '.1f')}]"
    return " ".join(c for c in (f"{ratio['ratio']:.1f}%", _spread(ratio, "ratio", 1), interval,
                                f"(k={ratio['k']})" if name_k else "") if c)


def _nll_cell(part: dict | None) -> str:
    if part is None or part.get("nll") is None:
        return "-"
    return f"{part['nll']:.2f} {_spread(part, 'nll', 2) or _ci(part, 2, 'nll_')}".rstrip()


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


# -- significance and examples ---------------------------------------------------------------------

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
    _same_test_sentences(rows, groups, "--baseline")
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


# -- seeds -----------------------------------------------------------------------------------------

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
    mean = statistics.mean(100 * _find(r["concat"], "k", k)["bleu"] / r["bleu"] for r in runs)
    return {"k": k, "ratio": round(mean, 1), "ratio_sd": round(statistics.stdev(x["ratio"] for x in ratios), 1),
            "ci_low": _finite(low), "ci_high": _finite(high)}


def _bootstrap(row: dict) -> int:
    return read_json_object(Path(row["report"])).get("bootstrap", DEFAULT_BOOTSTRAP)


def _mean(values: list) -> float | None:
    return None if any(v is None for v in values) else round(statistics.mean(values), 3)


def _mean_lists(lists: list[list | None]) -> list | None:
    """Elementwise mean of equally long lists (None where a run lacks a value)."""
    if any(values is None for values in lists):
        return None
    return [_mean(list(column)) for column in zip(*lists)]


def sentence_groups(rows: list[dict]) -> list[dict[str, list[list[int]]] | None]:
    """Each row's per-sentence BLEU statistics by figure (_sentence_groups), read once for all
    that pairs the runs' sentences."""
    return [_sentence_groups(Path(row["report"]), row["run"]) for row in rows]


def _sentence_groups(report: Path, run_dir: str | Path) -> dict[str, list[list[int]]] | None:
    """A run's per-sentence BLEU statistics by the figure they make: "all", each bucket's range,
    and "k=K"; None for a report written before they were kept."""
    path = sentences_path(report)
    if not path.exists():
        return None
    groups: dict[str, list[list[int]]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
            keys = [f"k={record['k']}"] + (["all", record["range"]] if record["k"] == 1 else [])
            for key in keys:
                groups.setdefault(key, []).append(record["bleu_stats"])
            if not (isinstance(record["bleu_stats"], list) and len(record["bleu_stats"]) == 10 and
                    all(type(x) is int for x in record["bleu_stats"])):  # sacreBLEU's 4-gram statistics
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{path} line {number} is malformed: run `seq2seq eval {run_dir}` again") from None
    return groups


def _same_test_sentences(rows: list[dict], groups: list[dict | None], option: str) -> None:
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


def largest_common_k(rows: list[dict], has: str = "bleu") -> int:
    """The largest concatenation k whose `has` every run reports."""
    ks = set.intersection(*({c["k"] for c in row["concat"] if c.get(has) is not None} for row in rows))
    if not ks:
        raise UserError(f"the runs report {has} for no common concatenation k: "
                        "run `seq2seq eval RUN --concat K` with one K for all")
    return max(ks)


def examples(rows: list[dict], n: int, groups: list[dict | None]) -> str:
    """The n sources of the largest k all runs evaluated where the runs' sentence BLEU differs
    most, each with its reference and every run's output (groups: the rows' sentence_groups)."""
    _same_test_sentences(rows, groups, "--examples")
    k = largest_common_k(rows)
    pairs = concatenate(split_pairs(RunDir(rows[0]["run"]).read_config().data, "test"), k)
    refs = [t for _, t in pairs]
    outputs = [_hypotheses(row, k, len(pairs)) for row in rows]
    bleu = [sentence_bleu(hyps, refs) for hyps in outputs]  # [run][sentence]
    spread = [max(scores) - min(scores) for scores in zip(*bleu)]
    chosen = sorted(range(len(pairs)), key=lambda i: -spread[i])[:n]
    labels = run_labels(rows)
    width = max(len(label) for label in labels + ["reference"])
    blocks = []
    for rank, i in enumerate(chosen, 1):
        lines = [f"example {rank}: joined pair {i + 1} of {len(pairs)} (k={k}); sentence BLEU differs by "
                 f"{spread[i]:.1f}",
                 f"  {'source':<{width}}        {pairs[i][0]}", f"  {'reference':<{width}}        {refs[i]}"]
        lines += [f"  {label:<{width}} {bleu[r][i]:5.1f}  {outputs[r][i]}" for r, label in enumerate(labels)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _hypotheses(row: dict, k: int, n: int) -> list[str]:
    path, beam = hypotheses_path(Path(row["report"]), k), row["beam"]
    lines = path.read_text(encoding="utf-8").split("\n")[:-1] if path.exists() else None
    if lines is None or len(lines) != n:
        again = f" --concat {k}" + (f" --beam {beam}" if beam > 1 else "") + \
            (f" --checkpoint {row['checkpoint']}" if row["checkpoint"] != "best" and row["engine"] == "pytorch" else "")
        raise UserError(f"{path} {'is missing' if lines is None else f'has {len(lines)} lines, not {n}'}: "
                        f"run `seq2seq eval {row['run']}{again}` again")
    return lines


def run_labels(rows: list[dict]) -> list[str]:
    """A study's variant name; else the model name, and the run dir's name too where two runs
    train the same model."""
    repeated = Counter(row["model"] for row in rows)
    return [row["variant"] if row.get("variant") and repeated[row["model"]] > 1 else
            row["model"] if repeated[row["model"]] == 1 else f"{row['model']} ({Path(row['run']).name})"
            for row in rows]
