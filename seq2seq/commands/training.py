"""`seq2seq train`, `study` and `average`: training runs, a study of them, and the mean of a
run's kept checkpoints."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer

from seq2seq.commands import app
from seq2seq.config import DEFAULT_DATASET, load_config, parse_set
from seq2seq.errors import UserError
from seq2seq.models import DEFAULT_MODEL, MODELS


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
