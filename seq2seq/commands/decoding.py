"""`seq2seq eval`, `score`, `translate`, `export` and `serve`: what a trained model (a run's
checkpoint, or an exported model) is used for."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Iterator, Optional

import typer

from seq2seq.commands import app, csv_ints
from seq2seq.errors import UserError

TRANSLATE_CHUNK = 1000  # lines read, translated and printed at a time
THREADS_HELP = ("CPU threads for decoding (default: torch's, from OMP_NUM_THREADS or the cores); an exported "
                "model decodes that many batches at once")
BATCH_TOKENS_HELP = "source tokens per decoding batch (default: the run's eval.batch_tokens)"
BATCH_EXAMPLES_HELP = "sentences per decoding batch, instead of --batch-tokens"


def _batching(batch_tokens: int | None, batch_examples: int | None) -> dict:
    """eval settings for the decoding batches' size: in tokens or in sentences, not both."""
    if batch_tokens is not None and batch_examples is not None:
        raise UserError("--batch-tokens and --batch-examples size a batch two ways: give one")
    if batch_examples is not None:
        return {"batch_examples": batch_examples}
    return {} if batch_tokens is None else {"batch_tokens": batch_tokens, "batch_examples": 0}


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., help="a run dir written by seq2seq train, or a model seq2seq export wrote"),
    split: str = typer.Option("test", help="train | validation | test"),
    checkpoint: Optional[str] = typer.Option(
        None, help="best (default) | last | avg (seq2seq average); each its own report: eval/test.json, "
                   "test.last.json, test.avg.json"),
    beam: Optional[int] = typer.Option(None, help="beam size, 1 = greedy (default: the run's eval.beam)"),
    concat: Optional[str] = typer.Option(None, help="concatenation probe, e.g. 1,2,4,6"),
    bootstrap: Optional[int] = typer.Option(None, help="resamples for 95% intervals (0 = none)"),
    dataset: Optional[str] = typer.Option(None, help="evaluate on this dataset instead of the run's"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    threads: Optional[int] = typer.Option(None, min=1, help=THREADS_HELP),
    batch_tokens: Optional[int] = typer.Option(None, min=1, help=BATCH_TOKENS_HELP),
    batch_examples: Optional[int] = typer.Option(None, min=1, help=BATCH_EXAMPLES_HELP),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON instead of a table"),
) -> None:
    """sacreBLEU and chrF (with signatures), BLEU by source length, and the concatenation probe."""
    import json

    from seq2seq.data import dataset_location
    from seq2seq.evaluate import evaluate, load_run
    from seq2seq.tables import eval_table

    batching = _batching(batch_tokens, batch_examples)
    loaded = load_run(run_dir, checkpoint, device, threads)
    report = evaluate(loaded, split, beam, csv_ints(concat, "--concat"), bootstrap, dataset_location(dataset),
                      batching)
    print(json.dumps(report.to_dict(), indent=2) if json_out else eval_table(report))


@app.command()
def score(
    run_dir: Path = typer.Argument(..., help="a run dir written by seq2seq train, or a model seq2seq export wrote"),
    split: str = typer.Option("test", help="train | validation | test"),
    concat: int = typer.Option(1, help="score K consecutive pairs joined into one, as eval --concat K does"),
    checkpoint: Optional[str] = typer.Option(None, help="best (default) | last | avg (seq2seq average)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Forced decoding, no search: per pair, in order, the reference's negative log-likelihood
    (nats, summed over its tokens) and its token count (EOS included), tab-separated."""
    from seq2seq.data import concatenate, split_pairs
    from seq2seq.evaluate import load_run
    from seq2seq.search import count_cut, cut_warning

    if concat < 1:
        raise UserError(f"--concat must be a positive integer, got {concat}")
    loaded = load_run(run_dir, checkpoint, device)
    pairs = concatenate(split_pairs(loaded.cfg.data, split), concat)
    for nlls in loaded.engine.reference_nll(pairs, loaded.cfg.eval.batch_tokens):
        print(f"{sum(nlls):.4f}\t{len(nlls)}")
    for side, i, cost in (("source", 0, "reference's NLL is conditioned on"), ("reference", 1, "NLL covers")):
        if n := count_cut(loaded.engine.max_positions, loaded.tok, [pair[i] for pair in pairs]):
            print(cut_warning(n, loaded.engine.max_positions, side, cost), file=sys.stderr)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="a transformer run dir written by seq2seq train"),
    output: Path = typer.Option(..., "--output", "-o", help="the model directory to write (new or empty)"),
    to: str = typer.Option(..., "--to", help="ctranslate2: the engine the model is written for"),
    checkpoint: str = typer.Option("best", help="best | last | avg (seq2seq average)"),
    quantization: str = typer.Option("float32", help="int8 | int8_float32 | bfloat16 | float32: the weights' type"),
) -> None:
    """Write a Transformer run's checkpoint as a CTranslate2 model, which translate, eval, score
    and compare take like a run."""
    from seq2seq.export import export as write, export_line

    print(export_line(output, write(run_dir, output, checkpoint, to, quantization)))


@app.command()
def translate(
    run_dir: Path = typer.Argument(..., help="a run dir written by seq2seq train, or a model seq2seq export wrote"),
    beam: Optional[int] = typer.Option(None, help="beam size, 1 = greedy (default: the run's eval.beam)"),
    checkpoint: Optional[str] = typer.Option(None, help="best (default) | last | avg (seq2seq average)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    threads: Optional[int] = typer.Option(None, min=1, help=THREADS_HELP),
    batch_tokens: Optional[int] = typer.Option(None, min=1, help=BATCH_TOKENS_HELP),
    batch_examples: Optional[int] = typer.Option(None, min=1, help=BATCH_EXAMPLES_HELP),
    attention_plot: Optional[Path] = typer.Option(
        None, help="draw the attention of the one sentence on stdin to FILE.png or .svg"),
    layer: Optional[int] = typer.Option(
        None, help="transformer: the decoder layer whose attention is drawn (default: -1, the last)"),
    nbest: Optional[int] = typer.Option(
        None, help="print the N best of the beam per input line as index<TAB>score<TAB>text, best first"),
) -> None:
    """Translate German lines from stdin into English lines on stdout, one for one, in order."""
    import dataclasses

    from seq2seq.evaluate import load_run

    if nbest is not None and nbest < 1:
        raise UserError(f"--nbest must be at least 1, got {nbest}")
    if attention_plot is not None:
        from seq2seq.plots import figure_format
        from seq2seq.rundir import check_output

        figure_format(attention_plot)
        check_output(attention_plot, "--attention-plot")
        if beam not in (None, 1):
            raise UserError("--attention-plot draws greedy decoding: drop --beam")
        if nbest is not None:
            raise UserError("--attention-plot draws greedy decoding: drop --nbest")
    elif layer is not None:
        raise UserError("--layer picks the attention to draw: it needs --attention-plot")
    batching = _batching(batch_tokens, batch_examples)
    loaded = load_run(run_dir, checkpoint, device, threads)
    settings = dataclasses.replace(loaded.cfg.eval, beam=loaded.cfg.eval.beam if beam is None else beam,
                                   **batching)
    settings.check()
    if nbest is not None and nbest > settings.beam:
        raise UserError(f"--nbest {nbest} needs a beam of at least {nbest}, got {settings.beam}: add --beam {nbest}")
    if attention_plot is not None:
        _draw_attention(loaded, _stdin_lines(), layer, attention_plot)
    else:
        _translate_lines(loaded, settings, _stdin_lines(), nbest)


@app.command()
def serve(
    runs: list[Path] = typer.Argument(..., help="run dirs written by seq2seq train"),
    host: str = typer.Option("127.0.0.1", help="the address to listen on (0.0.0.0: every network, with a warning)"),
    port: int = typer.Option(8000, help="the port (0: any free one; the URL is printed)"),
    checkpoint: str = typer.Option("best", help="best | last | avg (seq2seq average), for every run"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    max_batch: int = typer.Option(32, help="sentences one decode takes, per run"),
    batch_wait_ms: float = typer.Option(5.0, help="how long a batch waits for more requests after its first"),
    max_chars: int = typer.Option(5000, help="characters one request may hold"),
    max_lines: int = typer.Option(50, help="lines (sentences) one request may hold"),
) -> None:
    """Serve the runs over HTTP: a page to type German into and see each run's translation and
    attention, and a JSON API (POST /translate, OpenNMT-py's POST /translator/translate)."""
    from seq2seq.batcher import Settings
    from seq2seq.serve import serve as run_server

    run_server(runs, host, port, checkpoint, device, Settings(max_batch, batch_wait_ms / 1000, max_chars, max_lines))


def _draw_attention(loaded, lines: Iterator[str], layer: int | None, path: Path) -> None:
    """Draw the attention of the one sentence on stdin, and print its translation."""
    from seq2seq.evaluate import attention_map
    from seq2seq.plots import attention_figure, save

    first = next(lines, None)
    n = (first is not None) + sum(1 for _ in lines)
    if n != 1 or not first.strip():
        raise UserError("--attention-plot draws one sentence: give exactly one non-empty line on stdin, "
                        f"got {n} line{'s' * (n != 1)}")
    amap = attention_map(loaded, first, layer)
    save(attention_figure(amap), path)
    print(amap.translation)


def _translate_lines(loaded, settings, lines: Iterator[str], nbest: int | None) -> None:
    """Translate and print the lines in chunks, in bounded memory, as they come: one line per line
    (an empty one stays empty), or with nbest, its hypotheses numbered by their line in the input."""
    from seq2seq.search import count_cut, cut_warning

    engine, cut, start = loaded.engine, 0, 0
    while chunk := list(itertools.islice(lines, TRANSLATE_CHUNK)):
        todo = [i for i, line in enumerate(chunk) if line.strip()]
        sources = [chunk[i] for i in todo]
        cut += count_cut(engine.max_positions, engine.tok, sources)
        label = "translate" if start == 0 and len(chunk) < TRANSLATE_CHUNK else \
            f"translate lines {start + 1}-{start + len(chunk)}"
        if nbest is not None:
            found = engine.nbest(sources, settings, nbest, progress=label)
            print("".join(f"{start + i}\t{score:.4f}\t{text}\n" for i, hyps in zip(todo, found)
                          for score, text in hyps), end="", flush=True)
        else:
            out = [""] * len(chunk)
            for i, text in zip(todo, engine.translate(sources, settings, label)):
                out[i] = text
            print("\n".join(out), flush=True)
        start += len(chunk)
    if cut:
        print(cut_warning(cut, engine.max_positions), file=sys.stderr)


def _stdin_lines() -> Iterator[str]:
    """stdin's lines, split at \n only, as they come."""
    for number, raw in enumerate(sys.stdin.buffer, 1):
        try:
            yield raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise UserError(f"stdin line {number} is not valid UTF-8") from None
