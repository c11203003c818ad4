"""The command line: parse, load the config, call one function per command.

A mistake the user can make ends with one line on stderr and exit code 2 (UserError, or a
usage error from the parser); never a traceback.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import click
import typer

from seq2seq.config import DEFAULT_DATASET, load_config, parse_set
from seq2seq.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train and evaluate German->English translators: rnn, lstm, bahdanau, transformer.")


def _csv_ints(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} expects comma-separated integers, got {text!r}") from None


@app.command()
def train(
    model: Optional[str] = typer.Option(None, help="rnn | lstm | bahdanau | transformer (default bahdanau)"),
    config: Optional[Path] = typer.Option(None, help="YAML config (default: configs/<model>.yaml)"),
    dataset: Optional[str] = typer.Option(None, help=f"hub id or local directory [default: $SEQ2SEQ_DATASET or {DEFAULT_DATASET}]"),
    dataset_config: Optional[str] = typer.Option(None, help="hub dataset config, e.g. de-en for wmt/wmt14"),
    src_lang: Optional[str] = typer.Option(None, help="source language column [default: de]"),
    tgt_lang: Optional[str] = typer.Option(None, help="target language column [default: en]"),
    run_dir: Optional[Path] = typer.Option(None, help="where the run is written [default: runs/<model>-<time>]"),
    epochs: Optional[int] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None),
    time_budget: Optional[float] = typer.Option(None, help="seconds; stop cleanly when spent"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda"),
    seed: Optional[int] = typer.Option(None),
    max_train_pairs: Optional[int] = typer.Option(None, help="use only the first N training pairs"),
    set_: list[str] = typer.Option([], "--set", help="section.key=value for any config field (repeatable)"),
    resume: Optional[Path] = typer.Option(None, help="continue the run in this dir from its last checkpoint"),
    overwrite: bool = typer.Option(False, help="replace an existing run dir"),
) -> None:
    """Train a translator; writes config, tokenizer, metrics, checkpoints and log into the run dir."""
    from seq2seq.rundir import RunDir
    from seq2seq.train import train as fit

    overrides = {key: value for key, value in {
        "data.dataset": dataset or (None if resume else os.environ.get("SEQ2SEQ_DATASET")),
        "data.dataset_config": dataset_config, "data.src_lang": src_lang, "data.tgt_lang": tgt_lang,
        "train.epochs": epochs, "train.max_steps": max_steps, "train.time_budget": time_budget,
        "train.device": device, "train.seed": seed, "data.max_train_pairs": max_train_pairs,
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
    cfg = load_config(config, overrides, model=model or "bahdanau")
    if model is not None and cfg.model.name != model:
        cfg = cfg.replace({"model.name": model})
    run_dir = run_dir or Path("runs") / f"{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    fit(cfg, run_dir, overwrite=overwrite)


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., help="a run dir written by seq2seq train"),
    split: str = typer.Option("test", help="train | validation | test"),
    checkpoint: str = typer.Option("best", help="best | last"),
    beam: Optional[int] = typer.Option(None, help="beam size (1 = greedy) [default: the run's eval.beam]"),
    concat: Optional[str] = typer.Option(None, help="concatenation probe, e.g. 1,2,4,6"),
    bootstrap: Optional[int] = typer.Option(None, help="resamples for 95% intervals (0 = none)"),
    dataset: Optional[str] = typer.Option(None, help="evaluate on this dataset instead of the run's"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON instead of a table"),
) -> None:
    """sacreBLEU and chrF (with signatures), BLEU by source length, and the concatenation probe."""
    import json

    from seq2seq.evaluate import evaluate, load_run
    from seq2seq.report import eval_table

    loaded = load_run(run_dir, checkpoint, device)
    report = evaluate(loaded, split, beam, _csv_ints(concat, "--concat"), bootstrap, dataset, checkpoint)
    print(json.dumps(report, indent=2) if json_out else eval_table(report))


def main() -> None:
    command = typer.main.get_command(app)
    try:
        command.main(args=sys.argv[1:], prog_name="seq2seq", standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
