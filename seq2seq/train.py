"""`seq2seq train`: a training run from its config: the data and tokenizer, the run dir, the
model (restored from last.pt when resumed), then the Trainer's loop, and the run's summary in
run.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from seq2seq.config import Config
from seq2seq.corpus import prepare
from seq2seq.device import describe, pick_device, precision_label, require_compiler
from seq2seq.distributed import World, close_world, init_world
from seq2seq.errors import UserError
from seq2seq.files import append_line
from seq2seq.models.build import build_model
from seq2seq.resume import check_same_data, check_world_size, last_checkpoint
from seq2seq.rundir import RunDir
from seq2seq.tensorboard_writer import TensorBoard, require as require_tensorboard
from seq2seq.signals import interrupts
from seq2seq.tokenizer import Tokenizer
from seq2seq.train_checkpoints import TrainingState
from seq2seq.trainer import Trainer


def train(cfg: Config, run_dir: Path, resume: bool = False, overwrite: bool = False) -> RunDir:
    """Train a run (as one process, or as one rank of a torchrun job); returns its run dir."""
    run = RunDir(run_dir)
    if cfg.train.tensorboard:
        require_tensorboard(run.tensorboard if resume else None)
    device = pick_device(cfg.train.device)
    if cfg.train.compile:
        require_compiler(device)
    with interrupts() as signals:
        world, device = init_world(device)
        try:
            ckpt, tok = None, None
            if resume:
                world.run_on_main(run.lock)  # before the checkpoint is read: a second trainer never starts from it
                ckpt, tok = last_checkpoint(cfg, run)
                check_world_size(ckpt, world, run)
            trainer = _trainer(cfg, run, ckpt, tok, world, device, overwrite)
            signals.request = trainer.request_stop  # from now on, the first signal stops the loop at a checkpoint
            try:
                reason = trainer.fit()
            finally:
                signals.closing = True
                trainer.board.close()
            p = trainer.progress
            best = p.best_bleu if p.best_bleu >= 0 else None  # -1: no validation yet
            if world.main:
                run.update_info(steps=p.step, epochs=p.epoch, train_seconds=round(trainer.elapsed(), 1),
                                best_val_bleu=best, stopped=reason)
            trainer.log(f"stopped: {reason}; " + ("no validation yet" if best is None else
                                                  f"best validation BLEU {best:.2f}") + f"; run dir {run.path}")
            if trainer.stop_signal:
                raise UserError(f"training interrupted ({trainer.stop_signal}); resume with: "
                                f"seq2seq train --resume {run.path}", exit_code=130)
            return run
        except BaseException as e:
            signals.closing = True
            # a new run that failed before its first checkpoint leaves what was there before
            undone = run.abandon() if world.main else None
            if isinstance(e, KeyboardInterrupt) and signals.name:
                raise UserError(f"training interrupted ({signals.name}); {_left(run, undone)}", exit_code=130) from None
            raise
        finally:
            run.unlock()
            close_world(world)


def _left(run: RunDir, undone: str | None) -> str:
    """What an interrupted training leaves: `undone`, what abandon() left of a new run, if it did."""
    if undone:
        return f"it had no checkpoint yet: {undone}"
    if run.checkpoint("last").exists():
        return f"its last checkpoint is kept; resume with: seq2seq train --resume {run.path}"
    return "nothing was written"


def _trainer(cfg: Config, run: RunDir, ckpt: dict | None, tok: Tokenizer | None, world: World,
             device: torch.device, overwrite: bool) -> Trainer:
    """The run's data, tokenizer and model, its dir made (or reopened) and written, and its
    progress restored from `ckpt` when resumed."""
    torch.manual_seed(cfg.train.seed)
    lines: list[str] = []  # log lines before the run dir exists
    corpus, tok = prepare(cfg, lines.append, tok, world)  # bad data fails here, before anything is written
    if ckpt is not None:
        check_same_data(ckpt, corpus.fingerprint, cfg, run, lines.append)
    world.run_on_main(lambda: _open_run(run, cfg, tok, fresh=ckpt is None, overwrite=overwrite))
    log = _run_log(run, world)
    for line in lines:
        log(line)
    if ckpt is None and run.replaced.exists():
        log(f"the run replaced is kept in {run.replaced} until this one saves its first checkpoint")
    model = build_model(cfg.model, tok.vocab_size).to(device)
    progress = TrainingState(**ckpt["progress"]) if ckpt is not None else TrainingState()
    board = TensorBoard(run.tensorboard, progress.step) if cfg.train.tensorboard and world.main else None
    trainer = Trainer(cfg, run, model, tok, corpus, device, progress, log, world, board)
    if ckpt is not None:
        trainer.checkpoints.restore(ckpt)
        step = progress.step
        log(f"resumed {run.path} at step {step} (epoch {progress.epoch + 1})")
        if dropped := world.run_on_main(lambda: run.drop_metrics_after(step)):
            log(f"{dropped} metrics.jsonl records past step {step} dropped: they were written "
                "after the checkpoint, by a process stopped before it saved the next")
    if world.size > 1 and (ckpt is None or "rank_rng" not in ckpt):
        # the same weights everywhere (DDP checks), different dropout on each rank; from here on each
        # rank's random state is checkpointed (a checkpoint from before that resumes with a new one)
        torch.manual_seed(hash((cfg.train.seed, world.rank, progress.step)) % 2**63)
    log(f"model {cfg.model.name}: {trainer.params:,} parameters, device {describe(device, world)}, "
        f"{precision_label(model, trainer.update.precision, device)}")
    if world.main:
        run.update_info(model=cfg.model.name, params=trainer.params, device=describe(device, world),
                        torch=str(torch.__version__))
        run.add_command(" ".join(sys.argv))
    return trainer


def _open_run(run: RunDir, cfg: Config, tok: Tokenizer, fresh: bool, overwrite: bool) -> None:
    """Create (or reopen) the run dir and write the config and tokenizer into it. A run cut short
    here holds at least run.json's mark, and --overwrite replaces it."""
    if fresh:
        run.create(overwrite)
    run.write_config(cfg)
    if fresh:
        tok.save(run.spm)


def _run_log(run: RunDir, world: World):
    """log(msg, quiet=False): on rank 0, a timestamped line in train.log and, unless quiet, on stderr."""
    def log(msg: str, quiet: bool = False) -> None:
        if world.main:
            append_line(run.log, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}")
            if not quiet:
                print(msg, file=sys.stderr, flush=True)

    return log
