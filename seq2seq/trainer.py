"""The training loop. Each epoch shuffles the length-bucketed batches (seeded by the epoch, so a
resumed run sees the same ones); each batch is one update: the loss per target token with
label smoothing, gradients clipped, AdamW at the scheduled rate. Every log_every updates a log
line; at each validation (per epoch, or every eval_every updates) the loss and greedy BLEU,
best.pt when BLEU improves, and last.pt, which holds all exact resumption needs. Training stops
at the first of the epochs, max_steps, the time budget, patience (validations without a better
BLEU) or a signal; it then validates once more unless it has just validated (after a signal it
saves last.pt only). The update itself is update.py's, the checkpoints train_checkpoints.py's.
"""

from __future__ import annotations

import math
import time

import torch

from seq2seq import validation
from seq2seq.batching import Batch, token_batches
from seq2seq.config import Config, TrainConfig
from seq2seq.corpus import Corpus
from seq2seq.distributed import World
from seq2seq.errors import UserError
from seq2seq.models.base import Seq2Seq, count_parameters
from seq2seq.progress import ProgressBar
from seq2seq.rundir import RunDir
from seq2seq.runfiles import MetricsLine
from seq2seq.tensorboard_writer import TensorBoard
from seq2seq.tokenizer import Tokenizer
from seq2seq.train_checkpoints import TrainCheckpoints, TrainingState
from seq2seq.train_stats import StepStats, StepTotals
from seq2seq.update import Update


class Trainer:
    """Trains `model` from `progress` (a fresh TrainingState, or a resumed run's, whose weights,
    optimizer and random state checkpoints.restore() brings back), logging through `log` and
    into `board`."""

    def __init__(self, cfg: Config, run: RunDir, model: Seq2Seq, tok: Tokenizer, corpus: Corpus,
                 device: torch.device, progress: TrainingState, log, world: World = World(),
                 board: TensorBoard | None = None):
        self.cfg, self.run, self.model, self.tok, self.corpus = cfg, run, model, tok, corpus
        self.progress, self.log, self.world = progress, log, world
        t = cfg.train
        self.src_lens, self.tgt_lens = corpus.lengths()
        per_epoch = len(world.shard(token_batches(self.src_lens, self.tgt_lens, t.batch_tokens)))
        self.total_steps = min(t.epochs * per_epoch, t.max_steps or math.inf)  # whichever ends the run
        self.update = Update(t, model, device, world, self.total_steps)
        self.checkpoints = TrainCheckpoints(cfg, run, model, self.update, tok, corpus, device, world)
        self.params = count_parameters(model)
        self.board = board or TensorBoard()  # none unless asked for
        self.stats = TrainingLog(t, run, progress, log, self.board)
        self.valid_ids = corpus.valid_ids(tok, cfg.model.max_positions)
        self.started = self.last_save = time.monotonic()  # fit() restarts both
        self.elapsed_before = progress.elapsed  # seconds of training in earlier processes
        self.clock = progress.elapsed  # rank 0's elapsed(), as of the last update: every rank's rate follows it
        self.stop_signal: str | None = None
        self.validated_at = progress.step if progress.step else -1
        self.bar: ProgressBar | None = None  # fit()'s, drawn while it runs

    def elapsed(self) -> float:
        """Wall seconds of training in this run, earlier processes included."""
        return self.elapsed_before + time.monotonic() - self.started

    def lr(self) -> float:
        """The rate of the next update, by rank 0's clock."""
        return self.update.lr(self.progress.step, self.clock, self.progress.warmup_elapsed)

    def fit(self) -> str:
        """Epochs of shuffled batches, one update each (step()), until the epochs, max_steps, the
        time budget, patience or a signal end it; returns why it stopped."""
        t, p = self.cfg.train, self.progress
        self.started = self.last_save = time.monotonic()
        self.model.train()
        self.bar = ProgressBar(self.total_steps, "train", p.step, active=self.world.main)
        stop, self.clock = self.world.from_main((self.stop_reason(), self.elapsed()))  # a resumed run may be done
        while stop is None and p.epoch < t.epochs:
            batches = token_batches(self.src_lens, self.tgt_lens, t.batch_tokens, t.seed, p.epoch)
            for idx in self.world.shard(batches[p.batch_in_epoch:]):
                if stop := self.step(self.corpus.batch(idx)):
                    break
            else:
                p.epoch, p.batch_in_epoch = p.epoch + 1, 0
                if not t.eval_every and self.validated_at != p.step:  # resumed at the epoch's end: validated
                    stop = self.validate_everywhere()
        self.bar.close()
        self.stop_signal = self.world.from_main(self.stop_signal)  # every rank ends the same way
        if self.stop_signal:
            self.save_last()
        elif self.validated_at != p.step:
            self.validate_everywhere()
        return stop or f"{t.epochs} epochs done"

    def step(self, batch: Batch) -> str | None:
        """One update, then what is due after it: a log line, a validation, a checkpoint. Returns
        why training stops, if it does."""
        t, p = self.cfg.train, self.progress
        self.stats.add(self.update(batch.to(self.update.device), self.lr()))
        p.step += 1
        p.batch_in_epoch += self.world.size  # counted in batches of all ranks
        if p.step % t.log_every == 0:
            self.stats.log_line(self.update.optimizer.param_groups[0]["lr"], quiet=self.bar.active)
        window = self.stats.window
        self.bar.update(p.step, f"loss {window.loss:.3f}  {window.tok_per_s:,.0f} tok/s")
        stop, save, self.clock = self.world.from_main((self.stop_reason(), self.checkpoint_due(), self.elapsed()))
        if p.step == t.warmup_steps:
            p.warmup_elapsed = self.clock
        if stop is None and t.eval_every and p.step % t.eval_every == 0:
            return self.validate_everywhere()
        if stop is None and save:
            self.save_last()
        return stop

    def save_last(self) -> None:
        """last.pt (TrainCheckpoints.save_last), the skipped batches counted in it: called on every rank."""
        self.stats.read()
        self.checkpoints.save_last(self.progress, self.elapsed())
        self.last_save = time.monotonic()

    def validate_everywhere(self) -> str | None:
        """Rank 0 validates while the others wait, then last.pt is saved; all learn whether to stop
        (patience)."""
        self.stats.read()
        if self.world.main:
            self.validate()
        self.stats.window, self.validated_at = StepTotals(), self.progress.step
        self.save_last()
        return self.world.from_main(self.stop_reason())

    def validate(self) -> None:
        """Validation loss and greedy BLEU, logged to metrics.jsonl with the training loss and
        throughput since the last validation; saves best (and the kept checkpoints)."""
        p, window = self.progress, self.stats.window
        val_loss, bleu = validation.validate(self.model, self.tok, self.corpus, self.valid_ids, self.cfg.eval,
                                             self.update.device, self.update.autocast)
        improved = bleu > p.best_bleu
        p.best_bleu, p.bad_validations = (bleu, 0) if improved else (p.best_bleu, p.bad_validations + 1)
        line = MetricsLine(step=p.step, epoch=p.epoch, train_loss=round(window.loss, 4), val_loss=round(val_loss, 4),
                           val_bleu=bleu, tgt_tok_per_s=round(window.tok_per_s), lr=self.lr(),
                           elapsed=round(self.elapsed(), 1))
        self.run.append_metrics(line)
        self.board.add(p.step, {"valid/loss": line.val_loss, "valid/bleu": bleu})
        self.log(f"validation at step {p.step}: val_loss {val_loss:.3f}, val BLEU {bleu:.2f}"
                 f"{' (best)' if improved else ''}, {line.tgt_tok_per_s} tok/s")
        self.checkpoints.save_validated(p, bleu, improved)

    def checkpoint_due(self) -> bool:
        t = self.cfg.train
        return bool(t.checkpoint_every and self.progress.step % t.checkpoint_every == 0 or
                    t.checkpoint_seconds and time.monotonic() - self.last_save > t.checkpoint_seconds)

    def request_stop(self, signal_name: str) -> None:
        self.stop_signal = signal_name
        self.log(f"{signal_name}: saving a checkpoint and stopping")

    def stop_reason(self) -> str | None:
        t = self.cfg.train
        if self.progress.bad_validations > t.patience:
            return f"no better validation BLEU in {t.patience + 1} validations"
        if self.stop_signal:
            return f"stopped by {self.stop_signal}"
        if t.max_steps and self.progress.step >= t.max_steps:
            return f"max_steps {t.max_steps} reached"
        if t.time_budget and self.elapsed() >= t.time_budget:
            return f"time budget {t.time_budget:g} s reached"
        return None


class TrainingLog:
    """What the loop reports of its updates: their statistics since the last validation (`window`)
    and since the last log line (`recent`), a log line every train.log_every updates with the
    curves into TensorBoard, and the count of skipped batches, too many of which stop the run."""

    def __init__(self, cfg: TrainConfig, run: RunDir, progress: TrainingState, log, board: TensorBoard):
        self.cfg, self.run, self.progress, self.log, self.board = cfg, run, progress, log, board
        self.window, self.recent = StepTotals(), StepTotals()

    def add(self, stats: StepStats) -> None:
        self.window.add(stats)
        self.recent.add(stats)

    def log_line(self, lr: float, quiet: bool) -> None:
        """The log line, and the curves since the last one (training loss, learning rate `lr`,
        gradient norm, throughput) into TensorBoard."""
        self.read()
        self.log(f"step {self.progress.step} epoch {self.progress.epoch + 1}: loss {self.window.loss:.3f}, "
                 f"{self.window.tok_per_s:.0f} tgt tok/s", quiet=quiet)
        recent, self.recent = self.recent, StepTotals()
        recent.read()
        self.board.add(self.progress.step, {"train/loss": recent.loss, "train/lr": lr,
                                            "train/grad_norm": recent.grad_norm, "train/tgt_tok_per_s": recent.tok_per_s})

    def read(self) -> None:
        """Bring the updates' statistics from the device (the loop's one wait for it) and count the
        skipped batches; too many stop the run."""
        skipped = self.window.read()
        if not skipped:
            return
        p, most = self.progress, self.cfg.max_nonfinite
        p.nonfinite += skipped
        if p.nonfinite > most:
            kept = (f"the last good checkpoint is kept in {self.run.checkpoints}"
                    if self.run.checkpoint("last").exists() else "no checkpoint was saved yet")
            raise UserError(f"non-finite loss or gradient in {p.nonfinite} batches by step {p.step} "
                            f"(more than train.max_nonfinite={most}); {kept}", exit_code=1)
        self.log(f"step {p.step}: {skipped} batches with a non-finite loss or gradient skipped ({p.nonfinite}/{most})")
