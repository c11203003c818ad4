"""Figures: BLEU by source length and by concatenation (a re-make of Bahdanau et al. 2014,
Figure 2), the reference NLL by position in the output, validation curves, and one sentence's
attention (their Figure 3).

Each figure is built by a function that returns it, so it can be inspected as well as saved.
Figures are drawn with Agg, off screen, and never through pyplot: no display is needed and no
global state is left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seq2seq.errors import UserError
from seq2seq.evaluate import LoadedRun
from seq2seq.files import atomic_write
from seq2seq.report import largest_common_k, run_labels
from seq2seq.search import greedy_attention
from seq2seq.tokenizer import EOS

FORMATS = {".png": "png", ".svg": "svg"}
BAND_ALPHA = 0.2  # the shaded 95% interval behind each line


def figure_format(path: Path) -> str:
    """The format a plot file's suffix asks for; checked before any work is done."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"cannot draw {path}: a plot file must end in {' or '.join(FORMATS)}")
    return fmt


def save(fig: Figure, path: Path) -> None:
    """Write the figure atomically: a reader never sees half a file."""
    fmt = figure_format(path)
    atomic_write(Path(path), lambda f: fig.savefig(f, format=fmt))


# -- BLEU by length --------------------------------------------------------------------------------

def length_figure(rows: list[dict]) -> Figure:
    """Left: test BLEU per source-length bucket. Right: test BLEU on k concatenated sentences
    against their mean source words. One line per run, with its 95% band. Rows are those of
    report.load_comparison."""
    fig = _figure(figsize=(11, 4.2))
    by_length, by_concat = fig.subplots(1, 2, sharey=True)
    ranges = list(dict.fromkeys(b["range"] for row in rows for b in row["buckets"]))
    for label, row in zip(run_labels(rows), rows):
        buckets = [b for b in row["buckets"] if b["n"] > 0]  # an empty bucket has no BLEU
        _line_with_band(by_length, [ranges.index(b["range"]) for b in buckets], buckets, label)
        _line_with_band(by_concat, [c["src_words"] for c in row["concat"]], row["concat"], label)
    by_length.set_xticks(range(len(ranges)), labels=ranges)
    by_length.set(title="BLEU by source length", xlabel="source sentence length (words)", ylabel="test BLEU")
    ticks = {c["k"]: c["src_words"] for row in rows for c in row["concat"]}
    by_concat.set_xticks(list(ticks.values()), labels=[f"{w:.0f}\nk={k}" for k, w in ticks.items()])
    by_concat.set(title="BLEU on k concatenated sentences", xlabel="mean source words")
    by_length.legend()
    for ax in (by_length, by_concat):
        ax.grid(alpha=0.3)
    return fig


def concat_figure(rows: list[dict]) -> Figure:
    """Test BLEU (left) and the reference's NLL per token (right) on k concatenated sentences,
    one line per run or per setup of several seeds (shaded: the seeds' mean +- their standard
    deviation; for one run, its 95% interval)."""
    fig = _figure(figsize=(11, 4.2))
    bleu, nll = fig.subplots(1, 2)
    for label, row in zip(run_labels(rows), rows):
        ks = [c["k"] for c in row["concat"]]
        _line_with_band(bleu, ks, row["concat"], label)
        _line_with_band(nll, ks, [c for c in row["concat"] if c.get("nll") is not None], label, "nll")
    ks = sorted({c["k"] for row in rows for c in row["concat"]})
    bleu.set(title="BLEU on k concatenated sentences", xlabel="sentences joined (k)", ylabel="test BLEU")
    nll.set(title="reference NLL on k concatenated sentences", xlabel="sentences joined (k)",
            ylabel="NLL per token (nats)")
    bleu.legend()
    for ax in (bleu, nll):
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
    return fig


def _line_with_band(ax, xs: list[float], points: list[dict], label: str, key: str = "bleu") -> None:
    """A figure (BLEU, or NLL) at xs as a line with markers, shaded: the mean +- the standard
    deviation across seeds where the points are means over seeds, else the 95% interval where
    it was computed."""
    xs = xs[:len(points)]
    line, = ax.plot(xs, [p[key] for p in points], marker="o", label=label)
    prefix = "" if key == "bleu" else f"{key}_"
    if all(p.get(f"{key}_sd") is not None for p in points):
        low = np.array([p[key] - p[f"{key}_sd"] for p in points], dtype=float)
        high = np.array([p[key] + p[f"{key}_sd"] for p in points], dtype=float)
    else:
        low = np.array([np.nan if p.get(f"{prefix}ci_low") is None else p[f"{prefix}ci_low"] for p in points], dtype=float)
        high = np.array([np.nan if p.get(f"{prefix}ci_high") is None else p[f"{prefix}ci_high"] for p in points],
                        dtype=float)
    if np.isfinite(low).any():
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=BAND_ALPHA, linewidth=0)


# -- NLL by position -------------------------------------------------------------------------------

def position_figure(rows: list[dict]) -> Figure:
    """The mean NLL of reference tokens by their relative position in the reference, on the
    largest k all runs evaluated: one line per run. Where a model loses the source, the NLL
    climbs towards the end it forgets."""
    k = largest_common_k(rows, has="position_nll")
    fig = _figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    for label, row in zip(run_labels(rows), rows):
        nll = next(c["position_nll"] for c in row["concat"] if c["k"] == k)
        centres = [100 * (b + 0.5) / len(nll) for b in range(len(nll))]  # % of the reference's tokens
        ax.plot(centres, [np.nan if x is None else x for x in nll], marker="o", label=label)
    ax.set(title=f"reference NLL by position, k={k} sentences joined",
           xlabel="position in the reference (% of its tokens)", ylabel="NLL per token (nats)", xlim=(0, 100))
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


# -- training curves -------------------------------------------------------------------------------

def curves_figure(rows: list[dict], metrics: list[list[dict]]) -> Figure:
    """Validation BLEU against training steps (left) and wall-clock minutes (right), one line
    per run: which model learns fastest per update, and which per minute of the same machine.
    metrics[i] holds the metrics.jsonl records of rows[i]."""
    fig = _figure(figsize=(11, 4.2))
    by_step, by_time = fig.subplots(1, 2, sharey=True)
    for label, records in zip(run_labels(rows), metrics):
        points = [m for m in records if m.get("val_bleu") is not None]
        line, = by_step.plot([m["step"] for m in points], [m["val_bleu"] for m in points], marker=".", label=label)
        by_time.plot([m["elapsed"] / 60 for m in points], [m["val_bleu"] for m in points], marker=".",
                     color=line.get_color())
    by_step.set(title="validation BLEU by step", xlabel="training steps", ylabel="validation BLEU")
    by_time.set(title="validation BLEU by time", xlabel="training time (minutes)")
    by_step.legend()
    for ax in (by_step, by_time):
        ax.grid(alpha=0.3)
    return fig


# -- attention -------------------------------------------------------------------------------------

@dataclass
class AttentionMap:
    source: list[str]  # subword pieces, EOS last
    target: list[str]  # subword pieces of the greedy translation, EOS last
    weights: np.ndarray  # (len(target), len(source)): row i is where output i looked
    translation: str
    title: str


def attention_map(loaded: LoadedRun, sentence: str, layer: int | None = None) -> AttentionMap:
    """The attention of every output step of the sentence's greedy translation (search.greedy_attention),
    labelled for drawing."""
    model, tok, name = loaded.model, loaded.tok, loaded.cfg.model.name
    if model is None:
        raise UserError(f"{loaded.run.path} is an exported model ({loaded.engine.name}), which gives no attention: "
                        f"draw it from the run it came from, {loaded.exported['run']}")
    src, out, weights = greedy_attention(model, tok, sentence, loaded.device, loaded.cfg.eval, layer, f"model {name}")
    title = f"{name} attention"
    if model.attention_layers is not None:
        title += f"\ndecoder layer {(-1 if layer is None else layer) % model.attention_layers}, mean over heads"
    return AttentionMap(source=tok.pieces(src + [EOS]), target=tok.pieces(out + [EOS]), weights=weights.numpy(),
                        translation=tok.decode([out])[0], title=title)


def attention_figure(amap: AttentionMap) -> Figure:
    """The source-target heatmap: source pieces along the top, target pieces down the side,
    white where the weight is 1 and black where it is 0, as in Bahdanau et al.'s Figure 3."""
    S, T = len(amap.source), len(amap.target)
    fig = _figure(figsize=(max(4.0, 0.35 * S + 2), max(3.0, 0.35 * T + 2)))
    ax = fig.add_subplot()
    ax.imshow(amap.weights, cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(S), labels=amap.source, rotation=90)
    ax.set_yticks(range(T), labels=amap.target)
    ax.xaxis.tick_top()
    ax.set_title(amap.title)
    return fig


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig
