"""The training loop. Each epoch shuffles the length-bucketed batches (seeded by the epoch, so a
resumed run sees the same ones); each batch is one update: the loss per target token with
label smoothing, gradients clipped, AdamW at the scheduled rate. Every log_every updates a log
line; at each validation (per epoch, or every eval_every updates) the loss and greedy BLEU,
best.pt when BLEU improves, and last.pt, which holds all exact resumption needs. Training stops
at the first of the epochs, max_steps, the time budget, patience (validations without a better
BLEU) or a signal; it then validates once more unless it has just validated (after a signal it
saves last.pt only). A model returns the loss summed over the batch's target tokens
(loss.output_loss); its normalisation and the label smoothing are the trainer's.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch

from seq2seq import checkpoint, validation
from seq2seq.batching import Batch, token_batches
from seq2seq.config import Config
from seq2seq.corpus import Corpus
from seq2seq.device import autocast, resolve_precision
from seq2seq.distributed import World
from seq2seq.errors import UserError
from seq2seq.models.base import Seq2Seq, count_parameters
from seq2seq.progress import ProgressBar
from seq2seq.rundir import RunDir
from seq2seq.runfiles import MetricsLine
from seq2seq.tensorboard_writer import TensorBoard
from seq2seq.train_stats import StepStats, StepTotals
from seq2seq.schedule import lr_at
from seq2seq.tokenizer import PAD, Tokenizer


@dataclass
class TrainingState:
    """Where training stands: with the weights, optimizer and RNG states, all exact resumption needs."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already trained on
    best_bleu: float = -1.0
    bad_validations: int = 0  # validations since the best one (early stopping)
    elapsed: float = 0.0  # wall seconds of training in earlier processes
    warmup_elapsed: float = 0.0  # wall seconds of training when warmup ended (the time budget's cosine starts there)
    nonfinite: int = 0  # batches skipped for a NaN/inf loss or gradient
    kept: list = field(default_factory=list)  # [val BLEU, step] of the checkpoints train.keep_best keeps, best first


class Trainer:
    def __init__(self, cfg: Config, run: RunDir, model: Seq2Seq, tok: Tokenizer, corpus: Corpus,
                 device: torch.device, progress: TrainingState, log, world: World = World()):
        self.cfg, self.run, self.model, self.tok, self.corpus = cfg, run, model, tok, corpus
        self.device, self.progress, self.log, self.world = device, progress, log, world
        t = cfg.train
        # Fused: one kernel updates every parameter, and it skips an update on the device when told
        # the loss was not finite (found_inf), so the loop need not wait to find out.
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=tuple(t.betas),
                                           weight_decay=t.weight_decay, fused=True)
        self.src_lens, self.tgt_lens = corpus.lengths()
        per_epoch = len(world.shard(token_batches(self.src_lens, self.tgt_lens, t.batch_tokens)))
        self.total_steps = min(t.epochs * per_epoch, t.max_steps or math.inf)  # whichever ends the run
        if t.compile:
            model.compile_steps()
        # This rank's replica of the model, as an update calls it: the model itself in one process;
        # under torchrun wrapped by DDP, whose backward all-reduces (averages) the gradients.
        self.replica = model if world.size == 1 else torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        self.precision = resolve_precision(t.precision, device)
        self.autocast = autocast(device, self.precision)
        self.started, self.elapsed_before = time.monotonic(), progress.elapsed  # fit() restarts the clock
        self.clock = progress.elapsed  # rank 0's elapsed(), as of the last update: every rank's rate follows it
        self.stop_signal: str | None = None
        self.params = count_parameters(model)
        self.board = TensorBoard()  # none unless train() opens one
        self.valid_ids = corpus.valid_ids(tok, cfg.model.max_positions)

    # -- checkpoints ---------------------------------------------------------------------------

    def state(self, rng: list[dict] | None = None) -> dict:
        """The checkpoint: weights, config, vocabulary, data and progress; given every rank's random
        state (`rng`, by rank), resumable: with the optimizer, those states and the world size."""
        state = {"model": self.model.state_dict(), "config": self.cfg.to_dict(),
                 "vocab": checkpoint.vocab_fingerprint(self.tok.proto), "data": self.corpus.fingerprint,
                 "progress": asdict(self.progress)}
        if rng is not None:
            state |= {"optimizer": self.optimizer.state_dict(), "rng": rng[0], "world_size": self.world.size}
            if self.world.size > 1:
                state["rank_rng"] = rng
        return state

    def rng_state(self) -> dict:
        """This rank's random state (dropout's masks come from it)."""
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save_last(self) -> None:
        """last.pt, written by rank 0 with every rank's random state: called on every rank."""
        self.read_window()  # the skipped batches are counted in the progress saved
        rng = self.world.gather(self.rng_state())
        if not self.world.main:
            return
        self.progress.elapsed = self.elapsed()
        checkpoint.save(self.run.checkpoint("last"), self.state(rng))
        self.run.saved("last", self.progress.step)
        self.last_save = time.monotonic()

    def restore(self, ckpt: dict) -> None:
        checkpoint.load_weights(self.model, ckpt["model"], self.run.checkpoint("last"))
        # Checkpoints from before the fused optimizer say fused=None: set before loading, since the
        # groups' flag decides where `step` is loaded to (the param's device, float32, for the fused kernel).
        saved = ckpt["optimizer"]
        groups = [group | {"fused": True, "foreach": None} for group in saved["param_groups"]]
        self.optimizer.load_state_dict({**saved, "param_groups": groups})
        self.progress = TrainingState(**ckpt["progress"])
        self.clock = self.progress.elapsed
        rng = ckpt["rank_rng"][self.world.rank] if "rank_rng" in ckpt else ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def keep(self, bleu: float, weights: dict | None = None) -> None:
        """Keep the train.keep_best checkpoints of highest validation BLEU, for `seq2seq average`;
        with keep_best 1, best.pt alone (as it always was). `weights`: this validation's state, if made."""
        n, p = self.cfg.train.keep_best, self.progress
        if n == 1:
            return
        ranked = sorted([*p.kept, [bleu, p.step]], key=lambda kept: -kept[0])  # a tie keeps the earlier
        p.kept = ranked[:n]
        if any(step == p.step for _, step in p.kept):
            checkpoint.save(self.run.kept(p.step), weights or self.state())
        for _, step in ranked[n:]:
            self.run.kept(step).unlink(missing_ok=True)

    # -- the loop ------------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Wall seconds of training in this run, earlier processes included."""
        return self.elapsed_before + time.monotonic() - self.started

    def lr(self) -> float:
        """The rate of the next update, by rank 0's clock."""
        p = self.progress
        return lr_at(p.step, self.cfg.train, self.total_steps, self.clock, p.warmup_elapsed)

    def fit(self) -> str:
        """Epochs of shuffled batches, one update each (update()), until the epochs, max_steps, the
        time budget, patience or a signal end it; returns why it stopped."""
        t, p = self.cfg.train, self.progress
        self.started = self.last_save = time.monotonic()
        self.elapsed_before = p.elapsed
        self.model.train()
        self.window, self.recent = StepTotals(), StepTotals()  # since the last validation, the last log line
        self.validated_at = p.step if p.step else -1
        self.bar = ProgressBar(self.total_steps, "train", p.step, active=self.world.main)
        stop, self.clock = self.world.from_main((self.stop_reason(), self.elapsed()))  # a resumed run may be done
        while stop is None and p.epoch < t.epochs:
            batches = token_batches(self.src_lens, self.tgt_lens, t.batch_tokens, t.seed, p.epoch)
            for idx in self.world.shard(batches[p.batch_in_epoch:]):
                if stop := self.update(self.corpus.batch(idx)):
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

    def update(self, batch: Batch) -> str | None:
        """One update, then what is due after it: a log line, a validation, a checkpoint. Returns
        why training stops, if it does."""
        t, p = self.cfg.train, self.progress
        stats = self.train_step(batch.to(self.device))
        self.window.add(stats)
        self.recent.add(stats)
        p.step += 1
        p.batch_in_epoch += self.world.size  # counted in batches of all ranks
        if p.step % t.log_every == 0:
            self.log_progress()
        self.bar.update(p.step, f"loss {self.window.loss:.3f}  {self.window.tok_per_s:,.0f} tok/s")
        stop, save, self.clock = self.world.from_main((self.stop_reason(), self.checkpoint_due(), self.elapsed()))
        if p.step == t.warmup_steps:
            p.warmup_elapsed = self.clock
        if stop is None and t.eval_every and p.step % t.eval_every == 0:
            return self.validate_everywhere()
        if stop is None and save:
            self.save_last()
        return stop

    def train_step(self, batch: Batch) -> StepStats:
        """One update on this rank's batch, queued without waiting for the device; when the loss
        or a gradient is not finite the update is skipped (and reported so)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()
        with self.autocast:
            loss = self.replica(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out, self.cfg.train.label_smoothing)
        # the loss and target tokens of all ranks' batches, summed on the device: no wait for them
        loss_sum, tokens = self.world.all_reduce(torch.stack([loss.detach().double(),
                                                              (batch.tgt_out != PAD).sum().double()]))
        # DDP averages gradients over ranks: scaled by the world size, the result is the gradient
        # of the loss per target token of all ranks' batches together, as in one process.
        (loss * self.world.size / tokens.float()).backward()
        clip = self.cfg.train.clip_norm if self.cfg.train.clip_norm > 0 else float("inf")  # inf: norm only
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)  # the same on every rank
        skipped = ~(torch.isfinite(loss_sum) & torch.isfinite(grad_norm))  # a NaN/inf loss or gradient
        self.optimizer.found_inf = skipped.float()  # the fused AdamW leaves parameters and moments as they are
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepStats(*(torch.where(skipped, 0.0, x) for x in (loss_sum, tokens)), skipped.double(),
                         torch.where(skipped, 0.0, grad_norm.double()))

    def log_progress(self) -> None:
        """The log line, and the curves since the last one (training loss, learning rate, gradient
        norm, throughput) into TensorBoard."""
        self.read_window()
        self.log(f"step {self.progress.step} epoch {self.progress.epoch + 1}: loss {self.window.loss:.3f}, "
                 f"{self.window.tok_per_s:.0f} tgt tok/s", quiet=self.bar.active)
        recent, self.recent = self.recent, StepTotals()
        recent.read()
        self.board.add(self.progress.step, {
            "train/loss": recent.loss, "train/lr": self.optimizer.param_groups[0]["lr"],
            "train/grad_norm": recent.grad_norm, "train/tgt_tok_per_s": recent.tok_per_s})

    def read_window(self) -> None:
        """Bring the updates' statistics from the device (the loop's one wait for it) and count the
        skipped batches; too many stop the run."""
        skipped = self.window.read()
        if not skipped:
            return
        p, most = self.progress, self.cfg.train.max_nonfinite
        p.nonfinite += skipped
        if p.nonfinite > most:
            kept = (f"the last good checkpoint is kept in {self.run.checkpoints}"
                    if self.run.checkpoint("last").exists() else "no checkpoint was saved yet")
            raise UserError(f"non-finite loss or gradient in {p.nonfinite} batches by step {p.step} "
                            f"(more than train.max_nonfinite={most}); {kept}", exit_code=1)
        self.log(f"step {p.step}: {skipped} batches with a non-finite loss or gradient skipped ({p.nonfinite}/{most})")

    def validate_everywhere(self) -> str | None:
        """Rank 0 validates while the others wait, then last.pt is saved; all learn whether to stop
        (patience)."""
        self.read_window()
        if self.world.main:
            self.validate()
        self.window, self.validated_at = StepTotals(), self.progress.step
        self.save_last()
        return self.world.from_main(self.stop_reason())

    def validate(self) -> None:
        """Validation loss and greedy BLEU, logged to metrics.jsonl with the training loss and
        throughput since the last validation; saves best (and the kept checkpoints)."""
        p, window = self.progress, self.window
        val_loss, bleu = validation.validate(self.model, self.tok, self.corpus, self.valid_ids, self.cfg.eval,
                                             self.device, self.autocast)
        improved = bleu > p.best_bleu
        p.best_bleu, p.bad_validations = (bleu, 0) if improved else (p.best_bleu, p.bad_validations + 1)
        line = MetricsLine(step=p.step, epoch=p.epoch, train_loss=round(window.loss, 4), val_loss=round(val_loss, 4),
                           val_bleu=bleu, tgt_tok_per_s=round(window.tok_per_s), lr=self.lr(),
                           elapsed=round(self.elapsed(), 1))
        self.run.append_metrics(line)
        self.board.add(p.step, {"valid/loss": line.val_loss, "valid/bleu": bleu})
        self.log(f"validation at step {p.step}: val_loss {val_loss:.3f}, val BLEU {bleu:.2f}"
                 f"{' (best)' if improved else ''}, {line.tgt_tok_per_s} tok/s")
        weights = self.state() if improved or self.cfg.train.keep_best > 1 else None
        if improved:
            checkpoint.save(self.run.checkpoint("best"), weights)
            self.run.saved("best", p.step)
        self.keep(bleu, weights)

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


