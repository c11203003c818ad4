"""The figures as people read them: one eval report as a table (`seq2seq eval`), and the rows of
a comparison as aligned text, markdown, CSV or JSON (`seq2seq compare`, the HTML report's table)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from seq2seq.errors import UserError
from seq2seq.runfiles import EvalReport

FORMATS = ("table", "csv", "json", "markdown")
TEXT_COLUMNS = ("run", "model", "engine")  # left-aligned; the figures are right-aligned
ADDED_KEYS = ("nll", "nll_ci_low", "nll_ci_high", "len_ratio")  # figures that reports of older versions lack
RATIO_KEYS = ("k", "ratio", "ci_low", "ci_high")


def _ci(row: dict, digits: int = 2, prefix: str = "") -> str:
    """The 95% interval of the figure whose bounds are row[prefix + "ci_low"] and row[prefix + "ci_high"]."""
    low, high = row.get(f"{prefix}ci_low"), row.get(f"{prefix}ci_high")
    return f"[{low:.{digits}f}, {high:.{digits}f}]" if low is not None else ""


def _bleu(row: dict) -> str:
    return "-" if row["bleu"] is None else f"{row['bleu']:.2f}"


def _nll(row: dict, digits: int = 3) -> str:
    return "-" if row.get("nll") is None else f"{row['nll']:.{digits}f}"


def _steps(report: EvalReport) -> str:
    """The step of the checkpoint a report scores; of an average, the steps it is the mean of."""
    averaged = report.averaged_steps
    return f"the mean of steps {', '.join(map(str, averaged))}" if averaged else f"step {report.step}"


def eval_table(record: EvalReport) -> str:
    report = record.to_dict()
    search = "greedy" if report["beam"] == 1 else f"beam {report['beam']}"
    engine = "" if record.engine == "pytorch" else \
        f"  {record.engine} {record.quantization} (computing in {record.compute_type})"
    lines = [f"{report['run']}  {report['model']}  {report['split']} ({report['n']} sentences)  "
             f"{report['checkpoint']} checkpoint, {_steps(record)}  {search}{engine}",
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
    header, body = display_cells(rows)
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
    engines = ("engine", "quantization") if _exported(rows) else ()
    records = [_flat(row, bucket_ranges(rows), concat_ks(rows), added, engines) for row in rows]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]) if records else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().rstrip("\n")


def display_cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The header and the cells shared by the terminal table and markdown. A bucket or k that a
    run did not evaluate, or a bucket without sentences, reads "-"."""
    columns = [("run", lambda r: r["variant"] if r.get("seeds", 1) > 1 and r.get("variant") else r["run"]),
               ("model", lambda r: r["model"])]
    if _exported(rows):
        columns.append(("engine", lambda r: " ".join(c for c in (r["engine"], r["quantization"]) if c)))
    if any(row.get("seeds", 1) > 1 for row in rows):
        columns.append(("seeds", lambda r: str(r.get("seeds", 1))))
    columns += [("params", lambda r: count(r["params"])), ("steps", lambda r: _number(r["steps"])),
               ("eval step", lambda r: "mean of " + ", ".join(map(str, r["averaged_steps"]))
                if r.get("averaged_steps") else _number(r["step"])),
               ("train", lambda r: duration(r["train_seconds"])), ("val BLEU", lambda r: _number(r["val_bleu"], 1)),
               ("test BLEU", _scored), ("chrF", lambda r: _number(r["chrf"], 1)), ("test NLL", _nll_cell),
               ("len ratio", lambda r: _number(r.get("len_ratio"), 2))]
    for label in bucket_ranges(rows):
        columns.append((f"{label} words", lambda r, label=label: _scored(find(r["buckets"], "range", label))))
    for k in concat_ks(rows):
        columns.append((f"k={k}", lambda r, k=k: _scored(find(r["concat"], "k", k))))
    ratio_ks = {row["k_ratio"]["k"] for row in rows if row.get("k_ratio")}
    if ratio_ks:
        header = f"k={min(ratio_ks)} / k=1" if len(ratio_ks) == 1 else "largest k / k=1"
        columns.append((header, lambda r: _ratio_cell(r.get("k_ratio"), len(ratio_ks) > 1)))
    for k in concat_ks(rows):
        columns.append((f"NLL k={k}", lambda r, k=k: _nll_cell(find(r["concat"], "k", k))))
    if len(ratio_ks) == 1:
        k = min(ratio_ks)
        columns.append((f"NLL rise k={k}", lambda r: _nll_rise(r, k)))
    return [name for name, _ in columns], [[cell(row) for _, cell in columns] for row in rows]


def _nll_rise(row: dict, k: int) -> str:
    """How much the reference's NLL per token grows from single sentences to k joined (nats)."""
    one, joined = find(row["concat"], "k", 1), find(row["concat"], "k", k)
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


def _exported(rows: list[dict]) -> bool:
    """Whether an exported model is among the rows: they then name each row's engine."""
    return any(row.get("engine", "pytorch") != "pytorch" for row in rows)


def _flat(row: dict, ranges: list[str], ks: list[int], added: tuple[str, ...], engines: tuple[str, ...]) -> dict:
    record = {key: row.get(key) for key in ("run", "variant", "seeds", "model", *engines, "params", "steps",
                                            "train_seconds", "val_bleu", "bleu_sd",
                                            "checkpoint", "step", "beam", "n", "bleu", "ci_low", "ci_high", "chrf",
                                            *added)}
    for label in ranges:
        bucket = find(row["buckets"], "range", label) or {}
        record |= {f"{key} {label}": bucket.get(key) for key in ("n", "bleu", "ci_low", "ci_high", *added)}
    for k in ks:
        probe = find(row["concat"], "k", k) or {}
        record |= {f"{key} k={k}": probe.get(key) for key in ("src_words", "n", "bleu", "ci_low", "ci_high", *added)}
    ratio = row.get("k_ratio") or {}
    return record | {"k_ratio" if key == "ratio" else f"k_ratio {key}": ratio.get(key) for key in RATIO_KEYS}


def bucket_ranges(rows: list[dict]) -> list[str]:
    """Every bucket any run reports, in the order the runs report them."""
    return list(dict.fromkeys(b["range"] for row in rows for b in row["buckets"]))


def concat_ks(rows: list[dict]) -> list[int]:
    return sorted({c["k"] for row in rows for c in row["concat"]})


def find(items: list[dict], key: str, value) -> dict | None:
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


def count(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"



def largest_common_k(rows: list[dict], has: str = "bleu") -> int:
    """The largest concatenation k whose `has` every run reports."""
    ks = set.intersection(*({c["k"] for c in row["concat"] if c.get(has) is not None} for row in rows))
    if not ks:
        raise UserError(f"the runs report {has} for no common concatenation k: "
                        "run `seq2seq eval RUN --concat K` with one K for all")
    return max(ks)


def run_labels(rows: list[dict]) -> list[str]:
    """A study's variant name; else the model name, and the run dir's name too where two runs
    train the same model."""
    repeated = Counter(row["model"] for row in rows)
    return [row["variant"] if row.get("variant") and repeated[row["model"]] > 1 else
            row["model"] if repeated[row["model"]] == 1 else f"{row['model']} ({Path(row['run']).name})"
            for row in rows]

