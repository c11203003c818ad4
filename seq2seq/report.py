"""`seq2seq report`: a study in one self-contained HTML file that opens offline in any browser.

It holds the comparison table (compare.py's, with intervals, and p-values where there is a
baseline), BLEU by length and by concatenation, the learning curves, each attention model's
attention on one fixed sentence, the longest test inputs translated by every run side by side,
the sacreBLEU signatures, and each run's model, size, config, command, machine and wall time.
Plain HTML and CSS: the figures are SVG in data URIs, nothing is fetched, no script runs.

It reads the runs' files only (runfiles.py); the attention maps, which a model must compute,
are given by the caller (evaluate.run_attention), so that no torch is needed here.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from typing import Callable

from seq2seq import plots
from seq2seq.compare import compare_runs, curves
from seq2seq.data import split_pairs
from seq2seq.errors import UserError
from seq2seq.files import atomic_write_text
from seq2seq.rundir import RunDir
from seq2seq.runfiles import read_hypotheses, read_report
from seq2seq.significance import mismatched_test_set, sentence_groups
from seq2seq.tables import TEXT_COLUMNS, count, display_cells, duration, run_labels

Attend = Callable[[str, str, str], "plots.AttentionMap | None"]  # (run dir, checkpoint, sentence) -> its map

ATTENTION_SENTENCE = "Die Katze, die auf der Matte neben dem Hund saß, sprang."  # README's example
EXAMPLES = 5  # the longest test inputs shown with every run's translation

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; }
.maps { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.maps figure { flex: 1 1 420px; max-width: 580px; margin: 0; }
pre, code { font: 0.85em/1.35 ui-monospace, monospace; background: #f6f6f6; }
pre { padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.ref { color: #555; font-style: italic; }
.wide { overflow-x: auto; }
"""


def write_report(run_dirs: list[str | Path], out: Path, beam: int = 1, sentence: str = ATTENTION_SENTENCE,
                 baseline: str | Path | None = None, attend: Attend | None = None, which: str = "best") -> None:
    """The report of the evaluated runs (their eval/test[.which][.beamN].json) into `out`, atomically:
    runs of one setup trained with several seeds make one row of the table and one line of a figure
    (their first seed's run stands for them in the attention maps and the examples). `attend`
    computes an attention map (None: the report has none)."""
    found = compare_runs(run_dirs, beam, baseline, which)
    rows, runs = found.rows, found.runs
    body = [f"<h1>seq2seq: {len(runs)} run{'s' * (len(runs) != 1)}, test set, "
            f"{'greedy' if beam == 1 else f'beam {beam}'}</h1>",
            section("Test BLEU and chrF", comparison_table(rows)),
            section("BLEU by source length and on concatenated sentences",
                    image(plots.length_figure(rows), "BLEU by source length and by concatenation")
                    + image(plots.concat_figure(rows), "BLEU and reference NLL by sentences joined")),
            section("Learning curves", image(curves(runs), "validation BLEU by step and by time")),
            section(f"Attention on &ldquo;{escape(sentence)}&rdquo;", attention_maps(rows, sentence, attend)),
            section(f"The {EXAMPLES} longest test inputs", longest_inputs(rows)),
            section("sacreBLEU signatures", signatures(rows)),
            section("Runs", "\n".join(run_details(row) for row in runs))]
    atomic_write_text(Path(out), page("seq2seq report", "\n".join(body)))


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="icon" href="data:,">\n<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n'
            f"<body>\n{body}\n</body>\n</html>\n")


def section(title: str, content: str) -> str:
    return f"<section>\n<h2>{title}</h2>\n{content}\n</section>"


def table(header: list[str], body: list[list[str]], text_columns: int = 1) -> str:
    """An HTML table of escaped cells: the first text_columns as text, the rest as right-aligned figures."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" if i < text_columns else f'<td class="num">{escape(c)}</td>'
                                    for i, c in enumerate(cells)) + "</tr>\n" for cells in body)
    return f"<table>\n<tr>{head}</tr>\n{rows}</table>"


def comparison_table(rows: list[dict]) -> str:
    """The comparison (the cells of `compare`), and a p-value column where the rows carry one."""
    header, body = display_cells(rows)
    if any(row.get("p_value") is not None or row.get("p_values") for row in rows):
        header = [*header, "p (test BLEU)"]
        body = [[*cells, _p_cell(row)] for cells, row in zip(body, rows)]
    seeds = any(row.get("seeds", 1) > 1 for row in rows)
    text = sum(name in TEXT_COLUMNS for name in header)  # run, model and engine: the leading columns
    return f'<div class="wide">{table(header, body, text)}</div>' + (
        "<p>Test BLEU with its bootstrap 95% interval; over several seeds, their mean &plusmn; their standard "
        "deviation, and each seed's p-value against the baseline's run of the same seed.</p>" if seeds else
        "<p>Test BLEU with its bootstrap 95% interval.</p>")


def _p_cell(row: dict) -> str:
    if row.get("p_values"):
        return "/".join(f"{p:.3f}" for p in row["p_values"]) + (" real" if row["real"] else "")
    return "baseline" if row.get("p_value") is None else f"{row['p_value']:.3f}"


def image(fig, alt: str) -> str:
    """A matplotlib figure as an inline SVG image (no date in it, so the same figure gives the same bytes)."""
    svg = io.BytesIO()
    fig.savefig(svg, format="svg", metadata={"Date": None})
    return f'<img alt="{escape(alt)}" src="data:image/svg+xml;base64,{base64.b64encode(svg.getvalue()).decode()}">'


def attention_maps(rows: list[dict], sentence: str, attend: Attend | None) -> str:
    """Each attention model's map of the sentence, from the checkpoint its row was evaluated with
    (where the run dir still holds it: the runs in docs/runs keep none)."""
    if attend is None:
        return "<p>No attention maps: this report was written without a model to compute them.</p>"
    maps, without = [], []
    for label, row in zip(run_labels(rows), rows):
        if not RunDir(row["run"]).checkpoint(row["checkpoint"]).exists():
            without.append(label)
            continue
        amap = attend(row["run"], row["checkpoint"], sentence)
        if amap is None:  # a model without attention: rnn, lstm
            continue
        amap.title = label + amap.title.removeprefix(row["model"])  # the run, where two train one model
        maps.append(f"<figure>{image(plots.attention_figure(amap), amap.title)}"
                    f"<figcaption>{escape(amap.translation)}</figcaption></figure>")
    missing = f"<p>No map of {escape(', '.join(without))}: the run dir holds no checkpoint to draw it with.</p>" \
        if without else ""
    if not maps:
        return missing or "<p>None of these runs has attention (rnn and lstm do not).</p>"
    return f'<div class="maps">\n{"".join(maps)}\n</div>{missing}'


def longest_inputs(rows: list[dict]) -> str:
    """The longest test inputs (in words), their references and every run's translation side by
    side, from the hypotheses eval wrote; runs on another test set than the first run's
    (significance.mismatched_test_set) are left out."""
    try:
        pairs = split_pairs(RunDir(rows[0]["run"]).read_config().data, "test")
    except UserError as e:  # the runs' test set is not at hand here (their dataset moved, or another machine's)
        return f"<p>No examples: {escape(str(e))}.</p>"
    groups = sentence_groups(rows)
    labels, hyps = [], []
    for label, row, found in zip(run_labels(rows), rows, groups):
        lines = read_hypotheses(Path(row["report"])) or []
        if mismatched_test_set(rows[0], groups[0], row, found) is None and len(lines) == len(pairs):
            labels.append(label)
            hyps.append(lines)
    longest = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0].split()))[:EXAMPLES]
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    body = "".join(f"<tr><td>{escape(pairs[i][0])} ({len(pairs[i][0].split())} words)<br>"
                   f'<span class="ref">{escape(pairs[i][1])}</span></td>'
                   + "".join(f"<td>{escape(h[i])}</td>" for h in hyps) + "</tr>\n" for i in longest)
    return f'<table>\n<tr><th>source and <span class="ref">reference</span></th>{head}</tr>\n{body}</table>'


def signatures(rows: list[dict]) -> str:
    body = []
    for label, row in zip(run_labels(rows), rows):
        signature = read_report(Path(row["report"]), f"run `seq2seq eval {row['run']}` again").signature
        body.append([label, signature.get("bleu", "-"), signature.get("chrf", "-")])
    return table(["run", "BLEU", "chrF"], body, text_columns=3)


def run_details(row: dict) -> str:
    """A run's model, size, training, machine, the command that trained it and its config."""
    run = RunDir(row["run"])
    exported, info = run.read_export(), run.read_info()  # an exported model has export.json, no run.json
    engine = (f"{exported.engine} {exported.quantization}, exported from {exported.run} "
              f"({exported.checkpoint} checkpoint)") if exported else "pytorch"
    facts = [("run", str(run.path)), ("model", row["model"]), ("engine", engine),
             ("parameters", count(row["params"])),
             ("steps", "-" if row["steps"] is None else f"{row['steps']:,}"),
             ("wall time", duration(row["train_seconds"])), ("stopped", info.stopped or "-"),
             ("machine", info.device or "-"), ("torch", info.torch or "-"),
             ("evaluated", f"{row['checkpoint']} checkpoint, step {row['step']}")]
    items = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
    config = run.config.read_text(encoding="utf-8")
    commands = "\n".join(info.commands or ["-"])
    return (f"<h3>{escape(row['model'])} &mdash; {escape(run.path.name)}</h3>\n<table>{items}</table>\n"
            f"<p>trained with</p><pre>{escape(commands)}</pre>\n"
            f"<details><summary>config.yaml</summary><pre>{escape(config)}</pre></details>")
