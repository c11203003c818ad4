"""Reports for people: the eval table, and the comparison of runs."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from seq2seq import checkpoint
from seq2seq.errors import UserError
from seq2seq.evaluate import report_path
from seq2seq.files import check_fields, read_json_object
from seq2seq.rundir import RunDir


def _ci(row: dict, digits: int = 2) -> str:
    return f"[{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]" if row.get("ci_low") is not None else ""


def _bleu(row: dict) -> str:
    return "-" if row["bleu"] is None else f"{row['bleu']:.2f}"


def eval_table(report: dict) -> str:
    search = "greedy" if report["beam"] == 1 else f"beam {report['beam']}"
    lines = [f"{report['run']}  {report['model']}  {report['split']} ({report['n']} sentences)  "
             f"{report['checkpoint']} checkpoint, step {report['step']}  {search}",
             f"BLEU {report['bleu']:.2f} {_ci(report)}  chrF {report['chrf']:.2f}",
             f"  {report['signature']['bleu']}",
             f"  {report['signature']['chrf']}",
             "",
             f"{'source words':>14} {'n':>6} {'BLEU':>7}  95% interval"]
    for b in report["buckets"]:
        lines.append(f"{b['range']:>14} {b['n']:>6} {_bleu(b):>7}  {_ci(b)}")
    if any(c["k"] > 1 for c in report["concat"]):
        lines += ["", f"{'concat k':>14} {'n':>6} {'BLEU':>7}  95% interval      mean source words"]
        for c in report["concat"]:
            lines.append(f"{c['k']:>14} {c['n']:>6} {_bleu(c):>7}  {_ci(c):<17} {c['src_words']:.1f}")
    return "\n".join(lines)


# -- the comparison of runs ------------------------------------------------------------------------

FORMATS = ("table", "csv", "json", "markdown")
BUCKET_KEYS = ("range", "n", "bleu", "ci_low", "ci_high")
CONCAT_KEYS = ("k", "src_words", "n", "bleu", "ci_low", "ci_high")
REPORT_KEYS = ("model", "params", "checkpoint", "step", "beam", "n", "bleu", "ci_low", "ci_high", "chrf",
               "buckets", "concat")
FIELD_TYPES = {"model": str, "checkpoint": str, "range": str, "params": int, "step": int, "steps": (int, None),
               "beam": int, "n": int, "k": int, "bleu": (float, None), "ci_low": (float, None),
               "ci_high": (float, None), "chrf": float, "src_words": float, "train_seconds": (float, None),
               "best_val_bleu": (float, None), "buckets": list, "concat": list}  # of reports, their parts, run.json
TEXT_COLUMNS = 2  # run and model, left-aligned; the figures after them are right-aligned


def load_comparison(run_dirs: list[str | Path], beam: int = 1) -> list[dict]:
    """One row per run, from what training (run.json) and `seq2seq eval` (eval/test.json) wrote.
    Nothing is decoded again: comparing is cheap, and the figures are those the eval reported."""
    if beam < 1:
        raise UserError(f"--beam must be at least 1, got {beam}")
    return [comparison_row(run_dir, beam) for run_dir in run_dirs]


def comparison_row(run_dir: str | Path, beam: int = 1) -> dict:
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise UserError(f"run dir not found: {run.path}")
    path = report_path(run, "test", beam)
    again = "" if beam == 1 else f" --beam {beam}"
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
    best = run.checkpoint("best")
    best_step = checkpoint.load(best, mmap=True)["progress"]["step"] if best.exists() else report["step"]
    if best_step != report["step"]:
        print(f"warning: {path} scores the checkpoint of step {report['step']}, but the run's best checkpoint "
              f"is now of step {best_step}: run `seq2seq eval {run.path}{again}` again", file=sys.stderr)
    info = run.read_info()
    check_fields(info, FIELD_TYPES, str(run.info))
    return {"run": str(run.path), "model": info.get("model", report["model"]),
            "params": info.get("params", report["params"]), "steps": info.get("steps"),
            "train_seconds": info.get("train_seconds"), "val_bleu": info.get("best_val_bleu"),
            **{key: report[key] for key in ("checkpoint", "step", "beam", "n", "bleu", "ci_low", "ci_high", "chrf")},
            "buckets": [{key: b[key] for key in BUCKET_KEYS} for b in report["buckets"]],
            "concat": [{key: c[key] for key in CONCAT_KEYS} for c in report["concat"]]}


def check_report(report: dict, path: Path) -> None:
    """One clear error for a field of an eval report, or of its buckets and probes, of the wrong type."""
    check_fields(report, FIELD_TYPES, str(path))
    for key, keys in (("buckets", BUCKET_KEYS), ("concat", CONCAT_KEYS)):
        for i, part in enumerate(report[key]):
            if not isinstance(part, dict) or not set(keys) <= part.keys():
                raise UserError(f"{path}: {key}[{i}] must be an object with {', '.join(keys)}")
            check_fields(part, FIELD_TYPES, f"{path}: {key}[{i}]")


def render_comparison(rows: list[dict], fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    if fmt == "csv":
        return comparison_csv(rows)
    header, body = _display_cells(rows)
    return comparison_markdown(header, body) if fmt == "markdown" else comparison_table(header, body)


def comparison_table(header: list[str], body: list[list[str]]) -> str:
    """Plain aligned text for a terminal: names to the left, figures to the right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *body)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < TEXT_COLUMNS else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(cells) for cells in body])


def comparison_markdown(header: list[str], body: list[list[str]]) -> str:
    rule = ["---" if i < TEXT_COLUMNS else "---:" for i in range(len(header))]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
                     for cells in [header, rule, *body])


def comparison_csv(rows: list[dict]) -> str:
    """Raw numbers, one column per figure, for spreadsheets and scripts."""
    records = [_flat(row, _bucket_ranges(rows), _concat_ks(rows)) for row in rows]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]) if records else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().rstrip("\n")


def _display_cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The header and the cells shared by the terminal table and markdown. A bucket or k that a
    run did not evaluate, or a bucket without sentences, reads "-"."""
    columns = [("run", lambda r: r["run"]), ("model", lambda r: r["model"]),
               ("params", lambda r: _count(r["params"])), ("steps", lambda r: _number(r["steps"])),
               ("eval step", lambda r: _number(r["step"])),
               ("train", lambda r: _duration(r["train_seconds"])), ("val BLEU", lambda r: _number(r["val_bleu"], 1)),
               ("test BLEU", _scored), ("chrF", lambda r: _number(r["chrf"], 1))]
    for label in _bucket_ranges(rows):
        columns.append((f"{label} words", lambda r, label=label: _scored(_find(r["buckets"], "range", label))))
    for k in _concat_ks(rows):
        columns.append((f"k={k}", lambda r, k=k: _scored(_find(r["concat"], "k", k))))
    return [name for name, _ in columns], [[cell(row) for _, cell in columns] for row in rows]


def _flat(row: dict, ranges: list[str], ks: list[int]) -> dict:
    record = {key: row[key] for key in ("run", "model", "params", "steps", "train_seconds", "val_bleu",
                                        "checkpoint", "step", "beam", "n", "bleu", "ci_low", "ci_high", "chrf")}
    for label in ranges:
        bucket = _find(row["buckets"], "range", label) or {}
        record |= {f"{key} {label}": bucket.get(key) for key in ("n", "bleu", "ci_low", "ci_high")}
    for k in ks:
        probe = _find(row["concat"], "k", k) or {}
        record |= {f"{key} k={k}": probe.get(key) for key in ("src_words", "n", "bleu", "ci_low", "ci_high")}
    return record


def _bucket_ranges(rows: list[dict]) -> list[str]:
    """Every bucket any run reports, in the order the runs report them."""
    return list(dict.fromkeys(b["range"] for row in rows for b in row["buckets"]))


def _concat_ks(rows: list[dict]) -> list[int]:
    return sorted({c["k"] for row in rows for c in row["concat"]})


def _find(items: list[dict], key: str, value) -> dict | None:
    return next((item for item in items if item[key] == value), None)


def _scored(part: dict | None) -> str:
    if part is None or part["n"] == 0 or part["bleu"] is None:
        return "-"
    return f"{part['bleu']:.1f} {_ci(part, 1)}".rstrip()


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

