"""The command line: parse, load the config, call one function per command.

A mistake the user can make ends with one line on stderr and exit code 2 (UserError, or a
usage error from the parser); never a traceback.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import typer

# Usage errors come from click, or from the copy of click that recent typer versions ship.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

from seq2seq.config import DEFAULT_DATASET, load_config, parse_set
from seq2seq.errors import UserError
from seq2seq.models import DEFAULT_MODEL, MODELS

TRANSLATE_CHUNK = 1000  # lines read, translated and printed at a time

# How torch says an allocation failed: on CUDA, and on the CPU (c10's DefaultCPUAllocator).
OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help=f"Train and evaluate German->English translators: {', '.join(MODELS)}.")


def _version(shown: bool) -> None:
    if shown:
        from seq2seq import __version__

        print(f"seq2seq {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")) -> None:
    pass


def _csv_ints(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} expects comma-separated integers, got {text!r}") from None


@app.command()
def train(
    model: Optional[str] = typer.Option(None, help=f"{' | '.join(MODELS)} (default: {DEFAULT_MODEL})"),
    config: Optional[Path] = typer.Option(None, help="YAML config (default: configs/<model>.yaml)"),
    dataset: Optional[str] = typer.Option(None, help=f"hub id or local directory (default: $SEQ2SEQ_DATASET, else {DEFAULT_DATASET})"),
    dataset_config: Optional[str] = typer.Option(None, help="hub dataset config, e.g. de-en for wmt/wmt14"),
    src_lang: Optional[str] = typer.Option(None, help="source language column (default: de)"),
    tgt_lang: Optional[str] = typer.Option(None, help="target language column (default: en)"),
    run_dir: Optional[Path] = typer.Option(None, help="where the run is written (default: runs/<model>-<time>)"),
    epochs: Optional[int] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None),
    time_budget: Optional[float] = typer.Option(None, help="seconds; stop cleanly when spent"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda"),
    seed: Optional[int] = typer.Option(None),
    max_train_pairs: Optional[int] = typer.Option(None, help="use only the first N training pairs"),
    set_: list[str] = typer.Option([], "--set", help="section.key=value for any config field (repeatable)"),
    resume: Optional[Path] = typer.Option(None, help="continue the run in this dir from its last checkpoint"),
    overwrite: bool = typer.Option(False, help="replace an existing run dir"),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="also write TensorBoard curves to RUN/tensorboard/"),
) -> None:
    """Train a translator; writes config, tokenizer, metrics, checkpoints and log into the run dir."""
    from seq2seq.data import dataset_location
    from seq2seq.distributed import torchrun_world
    from seq2seq.rundir import RunDir
    from seq2seq.train import train as fit

    dataset = dataset or (None if resume else os.environ.get("SEQ2SEQ_DATASET"))
    overrides = {key: value for key, value in {
        "data.dataset": dataset_location(dataset),
        "data.dataset_config": dataset_config, "data.src_lang": src_lang, "data.tgt_lang": tgt_lang,
        "train.epochs": epochs, "train.max_steps": max_steps, "train.time_budget": time_budget,
        "train.device": device, "train.seed": seed, "data.max_train_pairs": max_train_pairs,
        "train.tensorboard": tensorboard or None,
    }.items() if value is not None}
    overrides |= parse_set(set_)
    if resume is not None:
        if run_dir is not None or overwrite or config is not None:
            raise UserError("--resume takes the run's own config: drop --run-dir, --config and --overwrite")
        saved = RunDir(resume).read_config()
        if model is not None and model != saved.model.name:
            raise UserError(f"run {resume} trains model {saved.model.name}, not {model}")
        cfg = saved.replace(overrides)
        fit(cfg, resume, resume=True)
        return
    if model is not None:  # the named model first: --set model.* then sets its own settings
        overrides = {"model.name": model, **overrides}
    cfg = load_config(config, overrides, model=model or DEFAULT_MODEL)
    if run_dir is None and torchrun_world().size > 1:
        raise UserError("under torchrun, name the run dir with --run-dir (all ranks must agree on it)")
    run_dir = run_dir or Path("runs") / f"{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    fit(cfg, run_dir, overwrite=overwrite)


THREADS_HELP = "CPU threads for decoding (default: torch's, from OMP_NUM_THREADS or the cores)"
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
    report = evaluate(loaded, split, beam, _csv_ints(concat, "--concat"), bootstrap, dataset_location(dataset),
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
def compare(
    runs: list[Path] = typer.Argument(..., help="run dirs, each evaluated by seq2seq eval"),
    beam: int = typer.Option(1, help="compare the reports of this beam size (eval/test.beamN.json)"),
    format_: str = typer.Option("table", "--format", help="table | csv | json | markdown"),
    baseline: Optional[Path] = typer.Option(None, help="one of the runs: give the others the paired-bootstrap "
                                                       "p-value of their BLEU against it"),
    plot: Optional[Path] = typer.Option(None, help="draw BLEU by length and by concatenation to FILE.png or .svg"),
    plot_position: Optional[Path] = typer.Option(
        None, help="draw the reference NLL by position at the largest k to FILE.png or .svg"),
    plot_concat: Optional[Path] = typer.Option(
        None, help="draw BLEU and the reference NLL by k sentences joined to FILE.png or .svg"),
    curves: Optional[Path] = typer.Option(None, help="draw validation BLEU by step and by time to FILE.png or .svg"),
    examples: int = typer.Option(0, help="after the table, N sources of the largest k where the runs differ most"),
    checkpoint: str = typer.Option("best", help="best | last | avg: compare the evaluations of this checkpoint "
                                                "(eval/test.json, test.last.json, test.avg.json)"),
    columns: Optional[str] = typer.Option(None, help="the table's columns to show, by their headers, comma-separated "
                                                     "(e.g. run,params,k=1,k=6)"),
) -> None:
    """One table of runs (the runs of one setup trained with several seeds make one row): size, training, test BLEU, chrF and NLL, by length and by concatenation."""
    from seq2seq.compare import compare as print_comparison

    figures = {option: path for option, path in (("--plot", plot), ("--plot-position", plot_position),
                                                 ("--plot-concat", plot_concat), ("--curves", curves))
               if path is not None}
    print_comparison(runs, beam, format_, baseline, figures, examples,
                     [c.strip() for c in columns.split(",")] if columns else None, checkpoint)


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., help="run dirs, each evaluated by seq2seq eval"),
    output: Path = typer.Option(..., "--output", "-o", help="the HTML file to write"),
    beam: int = typer.Option(1, help="report the evaluations of this beam size (eval/test.beamN.json)"),
    sentence: Optional[str] = typer.Option(None, help="the German sentence whose attention is drawn"),
    baseline: Optional[Path] = typer.Option(None, help="one of the runs: give the others the paired-bootstrap "
                                                       "p-value of their BLEU against it"),
    checkpoint: str = typer.Option("best", help="best | last | avg: report the evaluations of this checkpoint"),
) -> None:
    """One self-contained HTML file of runs: table, figures, attention, long examples, signatures, setups."""
    from seq2seq.evaluate import run_attention
    from seq2seq.report import ATTENTION_SENTENCE, write_report
    from seq2seq.rundir import check_output

    check_output(output, "--output")
    write_report(runs, output, beam, sentence or ATTENTION_SENTENCE, baseline, run_attention, checkpoint)
    print(f"wrote {output}")


@app.command()
def study(
    file: Path = typer.Argument(..., help="a study file, e.g. configs/studies/ladder-laptop.yaml"),
    out: Optional[Path] = typer.Option(None, help="where its runs, table, figures and report go "
                                                  "(default: runs/studies/<file name>)"),
    jobs: int = typer.Option(1, help="trainings at once, the cores split between them"),
    dataset: Optional[str] = typer.Option(None, help=f"hub id or local directory (default: $SEQ2SEQ_DATASET, "
                                                     f"else {DEFAULT_DATASET})"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda, for every run"),
) -> None:
    """Train every variant and seed of a study file, evaluate each, then compare them: one table,
    its figures and the HTML report. Run again, it resumes what is unfinished and skips the rest."""
    from seq2seq.data import dataset_location
    from seq2seq.study import run_study

    run_study(file, out, jobs, dataset_location(dataset or os.environ.get("SEQ2SEQ_DATASET")), device)


@app.command()
def average(run_dir: Path = typer.Argument(..., help="a run trained with --set train.keep_best=N")) -> None:
    """Average the checkpoints kept by train.keep_best into checkpoints/avg.pt (--checkpoint avg)."""
    from seq2seq import checkpoint
    from seq2seq.rundir import RunDir

    run = RunDir(run_dir)
    run.require()
    kept = run.kept_checkpoints()
    if len(kept) < 2:
        n = run.read_config().train.keep_best
        if n > 1:
            raise UserError(f"run {run.path} has kept {len(kept)} of the {n} best checkpoints (train.keep_best={n}) "
                            "so far, one per validation: average it once it has kept 2")
        raise UserError(f"run {run.path} kept {len(kept)} checkpoint{'s' * (len(kept) != 1)} to average: "
                        "train it with --set train.keep_best=N (N > 1)")
    averaged = checkpoint.average(kept)
    checkpoint.save(run.checkpoint("avg"), averaged)
    run.update_info(avg_step=averaged["progress"]["step"])  # compare reads it there
    print(f"{run.checkpoint('avg')}: the mean of {len(kept)} checkpoints ({', '.join(p.name for p in kept)})")


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
    from seq2seq.serve import Settings, serve as run_server

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


def main() -> None:
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="seq2seq", standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):  # typer.Abort is a RuntimeError: caught before the branch below
        code = 130
    except ClickException as e:
        if e.format_message():  # none after the help that `seq2seq` alone prints
            print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
        if isinstance(e, RuntimeError) and not any(s in str(e) for s in OUT_OF_MEMORY):
            raise  # any other is a bug, shown whole
        said = (str(e)[:1000].strip().splitlines() or [type(e).__name__])[0][:160]  # a MemoryError may say nothing
        print(f"error: out of memory ({said}); use a smaller --beam, eval.batch_tokens or train.batch_tokens",
              file=sys.stderr)
        sys.exit(1)
    if isinstance(code, int) and code:  # 130: a Ctrl-C, ours or one typer caught itself
        if code == 130:
            print("error: interrupted", file=sys.stderr)
        sys.exit(code)


if __name__ == "__main__":
    main()
