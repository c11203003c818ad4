"""fit(): data -> tokenizer -> batches -> model -> loss -> optimizer, with validation, early
stopping, checkpoints and exact resumption.

Loss, label smoothing and normalisation live here, not in the models: a model returns logits.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from seq2seq import checkpoint
from seq2seq.batching import Batch, collate, token_batches
from seq2seq.config import Config
from seq2seq.data import augment_table, clean, clean_table, fingerprint, load_split, load_table
from seq2seq.device import autocast, describe, pick_device, precision_label, resolve_precision
from seq2seq.distributed import World, close_world, init_world
from seq2seq.errors import UserError
from seq2seq.files import append_line
from seq2seq.metrics import corpus_scores
from seq2seq.models import build_model
from seq2seq.models.base import Seq2Seq, count_parameters
from seq2seq.progress import ProgressBar
from seq2seq.rundir import RunDir
from seq2seq.scalars import TensorBoard, require as require_tensorboard
from seq2seq.search import translate
from seq2seq.tokenizer import PAD, Tokenizer

TOKENIZER_SAMPLE = 1_000_000  # pairs the sentencepiece model is trained on, at most

# Fields that may change when a run is resumed (and data.dataset: the data's fingerprint is checked);
# any other difference means another run.
RESUMABLE_CHANGES = {"epochs", "max_steps", "time_budget", "patience", "eval_every", "checkpoint_every",
                     "checkpoint_seconds", "log_every", "device", "compile", "max_nonfinite", "keep_best",
                     "tensorboard", "precision"}


@dataclass
class Progress:
    """Where training stands: with the weights, optimizer and RNG states, all exact resumption needs."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already trained on
    best_bleu: float = -1.0
    bad_validations: int = 0  # validations since the best one (early stopping)
    elapsed: float = 0.0  # wall seconds of training in earlier processes
    nonfinite: int = 0  # batches skipped for a NaN/inf loss or gradient
    kept: list = field(default_factory=list)  # [val BLEU, step] of the checkpoints train.keep_best keeps, best first


@dataclass
class Corpus:
    """The tokenized training pairs (an Arrow table: src_ids, tgt_ids, src_len, tgt_len), the raw
    validation pairs, and the fingerprint of both."""

    table: object
    valid_src: list[str]
    valid_tgt: list[str]
    fingerprint: str = ""  # of the training and validation pairs (data.fingerprint)

    def lengths(self) -> tuple[list[int], list[int]]:
        """Tokens per source and target, with the EOS or BOS that collate adds."""
        return [n + 1 for n in self.table["src_len"]], [n + 1 for n in self.table["tgt_len"]]

    def batch(self, idx: list[int]) -> Batch:
        rows = self.table[idx]
        return collate(rows["src_ids"], rows["tgt_ids"])


def prepare(cfg: Config, log, tok: Tokenizer | None = None, world: World = World()) -> tuple[Corpus, Tokenizer]:
    """Load and clean the data; train the tokenizer (on rank 0, shared with the others) unless
    one is given (resume)."""
    train = load_table(cfg.data, "train")
    if cfg.data.max_train_pairs:
        train = train.select(range(min(cfg.data.max_train_pairs, len(train))))
    train, dropped_empty, dropped_long = clean_table(train, cfg.data.max_words)
    log(f"train: {len(train)} pairs kept, {dropped_empty} dropped as empty, "
        f"{dropped_long} longer than {cfg.data.max_words} words")
    if not len(train):
        raise UserError(f"dataset {cfg.data.dataset} has no training pairs left after cleaning")
    valid = clean(load_split(cfg.data, "validation"), cfg.data.max_words).pairs
    if not valid:
        raise UserError(f"dataset {cfg.data.dataset} has no validation pairs left after cleaning")
    if tok is None:
        sample = train.select(range(min(len(train), TOKENIZER_SAMPLE)))
        tok = Tokenizer(world.run_on_main(lambda: Tokenizer.train(
            [*sample["src"], *sample["tgt"]], cfg.data.vocab_size, cfg.data.spm_model_type).proto))
        if tok.vocab_size < cfg.data.vocab_size:
            log(f"vocabulary: {tok.vocab_size} pieces, fewer than data.vocab_size={cfg.data.vocab_size}: "
                "the training text holds no more")
    encoded = tok.encode_table(augment_table(train, cfg.data.concat_k))
    kept = encoded.filter(lambda s, t: [fits(cfg, a, b) for a, b in zip(s, t)], batched=True,
                          input_columns=["src_len", "tgt_len"])
    if len(kept) < len(encoded):
        log(f"train: {len(encoded) - len(kept)} pairs dropped as longer than {cfg.model.max_positions - 1} tokens")
    if not len(kept):
        raise UserError(f"no training pair fits in model.max_positions={cfg.model.max_positions} tokens")
    log(f"train: {len(kept)} pairs (concatenations up to k={cfg.data.concat_k}), "
        f"validation: {len(valid)} pairs, vocabulary: {tok.vocab_size}")
    return Corpus(kept, [s for s, _ in valid], [t for _, t in valid], fingerprint(train, valid)), tok


def fits(cfg: Config, src_len: int, tgt_len: int) -> bool:
    """Whether a pair of token counts fits the model's positions, EOS or BOS added to each side."""
    return max(src_len, tgt_len) < cfg.model.max_positions


def lr_at(step: int, cfg: Config, total_steps: int, elapsed: float = 0.0) -> float:
    """Linear warmup, then inverse square root, cosine or constant. The cosine anneals to
    train.min_lr by whichever rule ends the run first: its steps (epochs or max_steps) or, given
    `elapsed` training seconds, its time budget."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.schedule == "inverse_sqrt":
        return t.lr * math.sqrt(max(t.warmup_steps, 1) / (step + 1))
    if t.schedule == "cosine":
        done = (step - t.warmup_steps) / max(1, total_steps - t.warmup_steps)
        if t.time_budget:
            done = max(done, elapsed / t.time_budget)
        done = min(1.0, done)
        return t.min_lr + (t.lr - t.min_lr) * 0.5 * (1 + math.cos(math.pi * done))
    return t.lr


def token_loss(logits: torch.Tensor, tgt_out: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Summed cross-entropy over real target tokens: (B, T, V), (B, T) -> scalar."""
    return F.cross_entropy(logits.flatten(0, 1).float(), tgt_out.flatten(), ignore_index=PAD,
                           label_smoothing=label_smoothing, reduction="sum")


class Trainer:
    def __init__(self, cfg: Config, run: RunDir, model: Seq2Seq, tok: Tokenizer, corpus: Corpus,
                 device: torch.device, progress: Progress, log, world: World = World()):
        self.cfg, self.run, self.model, self.tok, self.corpus = cfg, run, model, tok, corpus
        self.device, self.p, self.log, self.world = device, progress, log, world
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
        self.step_fn = model
        if world.size > 1:  # gradients all-reduced (averaged) across ranks during backward
            self.step_fn = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        self.precision = resolve_precision(t.precision, device)
        self.autocast = autocast(device, self.precision)
        self.started, self.elapsed_before = time.monotonic(), progress.elapsed  # fit() restarts the clock
        self.stop_signal: str | None = None
        self.params = count_parameters(model)
        self.board = TensorBoard()  # none unless train() opens one
        # The validation loss is taken over the pairs that fit the model's positions, as training
        # is; validation BLEU translates all of them (with sources cut to fit).
        pairs = [(s, t) for s, t in zip(tok.encode(corpus.valid_src), tok.encode(corpus.valid_tgt))
                 if fits(cfg, len(s), len(t))]
        self.valid_ids = [s for s, _ in pairs], [t for _, t in pairs]

    # -- checkpoints ---------------------------------------------------------------------------

    def state(self, resumable: bool) -> dict:
        state = {"model": self.model.state_dict(), "config": self.cfg.to_dict(),
                 "vocab": checkpoint.vocab_fingerprint(self.tok.proto), "data": self.corpus.fingerprint,
                 "progress": asdict(self.p)}
        if resumable:
            state["optimizer"] = self.optimizer.state_dict()
            state["rng"] = {"torch": torch.get_rng_state()}
            if self.device.type == "cuda":
                state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save_last(self) -> None:
        self.read_window()  # the skipped batches are counted in the progress saved
        if not self.world.main:
            return
        self.p.elapsed = self.elapsed()
        checkpoint.save(self.run.checkpoint("last"), self.state(resumable=True))
        self.run.drop_replaced()
        self.last_save = time.monotonic()

    def restore(self, ckpt: dict) -> None:
        checkpoint.load_weights(self.model, ckpt["model"], self.run.checkpoint("last"))
        # Checkpoints from before the fused optimizer say fused=None: set before loading, since the
        # groups' flag decides where `step` is loaded to (the param's device, float32, for the fused kernel).
        saved = ckpt["optimizer"]
        groups = [group | {"fused": True, "foreach": None} for group in saved["param_groups"]]
        self.optimizer.load_state_dict({**saved, "param_groups": groups})
        self.p = Progress(**ckpt["progress"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)

    # -- the loop ------------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Wall seconds of training in this run, earlier processes included."""
        return self.elapsed_before + time.monotonic() - self.started

    def lr(self) -> float:
        return lr_at(self.p.step, self.cfg, self.total_steps, self.elapsed())

    def train_step(self, batch: Batch) -> torch.Tensor:
        """One update on this rank's batch, queued without waiting for the device. Returns, on the
        device, (loss summed over the target tokens of all ranks' batches, their count, 0, the
        gradient norm); when the loss or a gradient is not finite the update is skipped and it
        returns (0, 0, 1, 0)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()
        with self.autocast:  # the (B, T, V) logits are not kept: backward needs only their log-softmax
            loss = token_loss(self.step_fn(batch.src, batch.src_mask, batch.tgt_in), batch.tgt_out,
                              self.cfg.train.label_smoothing)
        # (loss sum, target tokens) over all ranks' batches, counted on the device: no wait for it.
        stats = self.world.all_reduce(torch.stack([loss.detach().double(),
                                                   (batch.tgt_out != PAD).sum().double()]))  # (2,)
        # DDP averages gradients over ranks: scaled by the world size, the result is the gradient
        # of the loss per target token of all ranks' batches together, as in one process.
        (loss * self.world.size / stats[1].float()).backward()
        clip = self.cfg.train.clip_norm if self.cfg.train.clip_norm > 0 else float("inf")  # inf: norm only
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)  # the same on every rank
        skipped = ~(torch.isfinite(stats[0]) & torch.isfinite(grad_norm))  # a NaN/inf loss or gradient
        self.optimizer.found_inf = skipped.float()  # the fused AdamW leaves parameters and moments as they are
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return torch.cat([torch.where(skipped, 0.0, stats), skipped.double()[None],
                          torch.where(skipped, 0.0, grad_norm.double())[None]])  # (4,)

    def read_window(self) -> None:
        """Bring the steps' statistics from the device (the loop's one wait for it) and count the
        skipped batches; too many stop the run."""
        skipped = self.window.read()
        if not skipped:
            return
        self.p.nonfinite += skipped
        if self.p.nonfinite > self.cfg.train.max_nonfinite:
            kept = (f"the last good checkpoint is kept in {self.run.checkpoints}"
                    if self.run.checkpoint("last").exists() else "no checkpoint was saved yet")
            raise UserError(f"non-finite loss or gradient in {self.p.nonfinite} batches by step {self.p.step} "
                            f"(more than train.max_nonfinite={self.cfg.train.max_nonfinite}); {kept}", exit_code=1)
        self.log(f"step {self.p.step}: {skipped} batches with a non-finite loss or gradient skipped "
                 f"({self.p.nonfinite}/{self.cfg.train.max_nonfinite})")

    @torch.no_grad()
    def validate(self, train_loss: float, train_tokens: int, train_seconds: float) -> None:
        """Validation loss and greedy BLEU, logged to metrics.jsonl; saves best and last."""
        self.model.eval()
        src_ids, tgt_ids = self.valid_ids
        nll, n = 0.0, 0
        for idx in token_batches([len(s) + 1 for s in src_ids], [len(t) + 1 for t in tgt_ids],
                                 self.cfg.eval.batch_tokens):
            b = collate([src_ids[i] for i in idx], [tgt_ids[i] for i in idx]).to(self.device)
            with self.autocast:
                nll += token_loss(self.model(b.src, b.src_mask, b.tgt_in), b.tgt_out).item()
            n += b.n_tokens
        e = self.cfg.eval
        hyps = translate(self.model, self.tok, self.corpus.valid_src, self.device, max_len_a=e.max_len_a,
                         max_len_b=e.max_len_b, batch_tokens=e.batch_tokens, precision=e.precision)
        bleu = corpus_scores(hyps, self.corpus.valid_tgt)["bleu"]
        self.model.train()
        improved = bleu > self.p.best_bleu
        if improved:
            self.p.best_bleu, self.p.bad_validations = bleu, 0
        else:
            self.p.bad_validations += 1
        record = {"step": self.p.step, "epoch": self.p.epoch, "train_loss": round(train_loss, 4),
                  "val_loss": round(nll / max(n, 1), 4), "val_bleu": bleu,
                  "tgt_tok_per_s": round(train_tokens / max(train_seconds, 1e-9)),
                  "lr": self.lr(), "elapsed": round(self.elapsed(), 1)}
        append_line(self.run.metrics, json.dumps(record))
        self.board.add(self.p.step, {"valid/loss": record["val_loss"], "valid/bleu": bleu})
        self.log(f"validation at step {self.p.step}: val_loss {record['val_loss']:.3f}, "
                 f"val BLEU {bleu:.2f}{' (best)' if improved else ''}, {record['tgt_tok_per_s']} tok/s")
        weights = self.state(resumable=False) if improved or self.cfg.train.keep_best > 1 else None
        if improved:
            checkpoint.save(self.run.checkpoint("best"), weights)
        self.keep(bleu, weights)
        self.save_last()

    def keep(self, bleu: float, weights: dict | None = None) -> None:
        """Keep the train.keep_best checkpoints of highest validation BLEU, for `seq2seq average`;
        with keep_best 1, best.pt alone (as it always was). `weights`: this validation's state, if made."""
        n = self.cfg.train.keep_best
        if n == 1:
            return
        ranked = sorted([*self.p.kept, [bleu, self.p.step]], key=lambda kept: -kept[0])  # a tie keeps the earlier
        self.p.kept = ranked[:n]
        if any(step == self.p.step for _, step in self.p.kept):
            checkpoint.save(self.run.kept(self.p.step), weights or self.state(resumable=False))
        for _, step in ranked[n:]:
            self.run.kept(step).unlink(missing_ok=True)

    def fit(self) -> str:
        """Train until epochs, max_steps, time budget, patience or a signal; returns why it stopped."""
        t = self.cfg.train
        self.started = self.last_save = time.monotonic()
        self.elapsed_before = self.p.elapsed
        self.model.train()
        self.window, self.recent = Window(), Window()
        validated_at = self.p.step if self.p.step else -1
        bar = ProgressBar(self.total_steps, "train", self.p.step, active=self.world.main)
        stop = self.world.from_main(self.stop_reason())  # a resumed run may have nothing left to do
        while stop is None and self.p.epoch < t.epochs:
            batches = token_batches(self.src_lens, self.tgt_lens, t.batch_tokens, t.seed, self.p.epoch)
            for idx in self.world.shard(batches[self.p.batch_in_epoch:]):
                stats = self.train_step(self.corpus.batch(idx).to(self.device))
                self.window.add(stats)
                self.recent.add(stats)
                self.p.step += 1
                self.p.batch_in_epoch += self.world.size  # counted in batches of all ranks
                if self.p.step % t.log_every == 0:
                    self.read_window()
                    self.log(f"step {self.p.step} epoch {self.p.epoch + 1}: loss {self.window.loss:.3f}, "
                             f"{self.window.tok_per_s:.0f} tgt tok/s", quiet=bar.active)
                    self.log_curves()
                bar.update(self.p.step, f"loss {self.window.loss:.3f}  {self.window.tok_per_s:,.0f} tok/s")
                stop, save = self.world.from_main((self.stop_reason(), self.checkpoint_due()))
                if stop is None and t.eval_every and self.p.step % t.eval_every == 0:
                    stop, validated_at = self.validate_everywhere(), self.p.step
                elif stop is None and save:
                    self.save_last()
                if stop:
                    break
            else:
                self.p.epoch += 1
                self.p.batch_in_epoch = 0
                if not t.eval_every:
                    stop, validated_at = self.validate_everywhere(), self.p.step
        bar.close()
        self.stop_signal = self.world.from_main(self.stop_signal)  # every rank ends the same way
        if self.stop_signal:
            self.save_last()
        elif validated_at != self.p.step:
            self.validate_everywhere()
        return stop or f"{t.epochs} epochs done"

    def log_curves(self) -> None:
        """Training loss, learning rate, gradient norm and throughput since the last call, into TensorBoard."""
        recent, self.recent = self.recent, Window()
        recent.read()
        self.board.add(self.p.step, {"train/loss": recent.loss, "train/lr": self.optimizer.param_groups[0]["lr"],
                                     "train/grad_norm": recent.grad_norm, "train/tgt_tok_per_s": recent.tok_per_s})

    def validate_everywhere(self) -> str | None:
        """Rank 0 validates while the others wait; all learn whether to stop (patience)."""
        self.read_window()
        if self.world.main:
            self.validate(self.window.loss, self.window.tokens, self.window.seconds)
        self.window = Window()
        return self.world.from_main(self.stop_reason())

    def checkpoint_due(self) -> bool:
        t = self.cfg.train
        return bool(t.checkpoint_every and self.p.step % t.checkpoint_every == 0 or
                    t.checkpoint_seconds and time.monotonic() - self.last_save > t.checkpoint_seconds)

    def stop_reason(self) -> str | None:
        t = self.cfg.train
        if self.p.bad_validations > t.patience:
            return f"no better validation BLEU in {t.patience + 1} validations"
        if self.stop_signal:
            return f"stopped by {self.stop_signal}"
        if t.max_steps and self.p.step >= t.max_steps:
            return f"max_steps {t.max_steps} reached"
        if t.time_budget and self.elapsed() >= t.time_budget:
            return f"time budget {t.time_budget:g} s reached"
        return None


@dataclass
class Window:
    """Training loss and throughput since the last validation. The steps add their statistics
    on the device; read() brings them to the host, so the loop waits for the device only then."""

    loss_sum: float = 0.0
    tokens: int = 0
    seconds: float = 0.0  # wall time from the window's start to its last read (checkpoint saves included)
    steps: int = 0  # steps taken in, skipped ones included
    skipped: int = 0
    grad_norm_sum: float = 0.0
    unread: torch.Tensor | None = None  # (loss sum, tokens, skipped batches, grad norm sum) of steps not read yet
    started: float = field(default_factory=time.monotonic)

    def add(self, step: torch.Tensor) -> None:
        self.unread = step if self.unread is None else self.unread + step
        self.steps += 1

    def read(self) -> int:
        """Take in the unread steps; returns how many of them were skipped as non-finite."""
        if self.unread is None:
            return 0
        loss_sum, tokens, skipped, grad_norm_sum = self.unread.tolist()
        self.unread = None
        self.loss_sum, self.tokens = self.loss_sum + loss_sum, self.tokens + int(tokens)
        self.skipped, self.grad_norm_sum = self.skipped + int(skipped), self.grad_norm_sum + grad_norm_sum
        self.seconds = time.monotonic() - self.started
        return int(skipped)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.tokens, 1)

    @property
    def tok_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)

    @property
    def grad_norm(self) -> float:
        """The mean gradient norm (before clipping) of the steps not skipped."""
        return self.grad_norm_sum / max(self.steps - self.skipped, 1)


def train(cfg: Config, run_dir: Path, resume: bool = False, overwrite: bool = False) -> RunDir:
    """Train a run (as one process, or as one rank of a torchrun job); returns its run dir."""
    run = RunDir(run_dir)
    if cfg.train.tensorboard:
        require_tensorboard()
    world, device = init_world(pick_device(cfg.train.device))
    try:
        ckpt, tok = None, None
        if resume:
            world.run_on_main(run.lock)  # before the checkpoint is read: a second trainer never starts from it
            ckpt, tok = _resumable(cfg, run)
        return _train(cfg, run, ckpt, tok, world, device, overwrite)
    except BaseException:
        if world.main:
            run.abandon()  # a new run that failed before its first checkpoint leaves what was there before
        raise
    finally:
        run.unlock()
        close_world(world)


def _resumable(cfg: Config, run: RunDir) -> tuple[dict, Tokenizer]:
    """The run's last checkpoint and tokenizer, checked against the config it is resumed with."""
    last = run.checkpoint("last")
    if not last.exists():
        raise UserError(f"run {run.path} has no checkpoint to resume from (it stopped before its first "
                        "save): train it again with --overwrite")
    run.read_info()  # a malformed run.json fails now, not after the data is prepared
    ckpt = checkpoint.load(last, remedy="it cannot be resumed: train it again with --overwrite")
    check_resumable(Config.from_dict(ckpt["config"], where=str(last)), cfg, run)
    tok = Tokenizer.load(run.spm)
    if ckpt.get("vocab") != checkpoint.vocab_fingerprint(tok.proto):
        raise UserError(f"checkpoint {last} was made with another vocabulary than {run.spm}")
    return ckpt, tok


def _train(cfg: Config, run: RunDir, ckpt: dict | None, tok: Tokenizer | None, world: World,
           device: torch.device, overwrite: bool) -> RunDir:
    torch.manual_seed(cfg.train.seed)
    lines: list[str] = []  # log lines before the run dir exists
    corpus, tok = prepare(cfg, lines.append, tok, world)  # bad data fails here, before anything is written
    if ckpt is not None:
        check_same_data(ckpt, corpus, cfg, run, lines.append)
    world.run_on_main(lambda: _open_run(run, cfg, tok, fresh=ckpt is None, overwrite=overwrite))

    def log(msg: str, quiet: bool = False) -> None:
        if world.main:
            append_line(run.log, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}")
            if not quiet:
                print(msg, file=sys.stderr, flush=True)

    for line in lines:
        log(line)
    if ckpt is None and run.replaced.exists():
        log(f"the run replaced is kept in {run.replaced} until this one saves its first checkpoint")
    model = build_model(cfg.model, tok.vocab_size).to(device)
    trainer = Trainer(cfg, run, model, tok, corpus, device, Progress(), log, world)
    if ckpt is not None:
        trainer.restore(ckpt)
        log(f"resumed {run.path} at step {trainer.p.step} (epoch {trainer.p.epoch + 1})")
        dropped = world.run_on_main(lambda: run.drop_metrics_after(trainer.p.step))
        if dropped:
            log(f"{dropped} metrics.jsonl records past step {trainer.p.step} dropped: they were written "
                "after the checkpoint, by a process stopped before it saved the next")
    if world.size > 1:  # the same weights everywhere (DDP checks), different dropout on each rank;
        # only rank 0's RNG is checkpointed, so exact resumption holds for one process only
        torch.manual_seed(hash((cfg.train.seed, world.rank, trainer.p.step)) % 2**63)
    log(f"model {cfg.model.name}: {trainer.params:,} parameters, device {describe(device, world)}, "
        f"{precision_label(model, trainer.precision, device)}")
    if world.main:
        run.update_info(model=cfg.model.name, params=trainer.params, device=describe(device, world),
                        torch=torch.__version__)
        run.add_command(" ".join(sys.argv))
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum, _frame):
        if trainer.stop_signal:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        trainer.stop_signal = signal.Signals(signum).name
        log(f"{trainer.stop_signal}: saving a checkpoint and stopping")

    for s in previous:
        signal.signal(s, request_stop)
    if cfg.train.tensorboard and world.main:
        trainer.board = TensorBoard(run.tensorboard, trainer.p.step)
    try:
        reason = trainer.fit()
    finally:
        trainer.board.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if world.main:
        run.update_info(steps=trainer.p.step, epochs=trainer.p.epoch, train_seconds=round(trainer.elapsed(), 1),
                        best_val_bleu=trainer.p.best_bleu, stopped=reason)
    log(f"stopped: {reason}; best validation BLEU {trainer.p.best_bleu:.2f}; run dir {run.path}")
    if trainer.stop_signal:
        raise UserError(f"training interrupted ({trainer.stop_signal}); resume with: "
                        f"seq2seq train --resume {run.path}", exit_code=130)
    return run


def _open_run(run: RunDir, cfg: Config, tok: Tokenizer, fresh: bool, overwrite: bool) -> None:
    """Create (or reopen) the run dir and write the config and tokenizer into it. A run cut short
    here holds at least run.json's mark, and --overwrite replaces it."""
    if fresh:
        run.create(overwrite)
    run.write_config(cfg)
    if fresh:
        tok.save(run.spm)


def check_same_data(ckpt: dict, corpus: Corpus, cfg: Config, run: RunDir, log) -> None:
    """A run resumes on the data it was trained on, wherever that lives now (data.dataset may
    change: a moved copy has the same fingerprint)."""
    saved = ckpt.get("data")
    if saved is None:
        log("the run predates data fingerprints: that its data is unchanged cannot be checked")
    elif saved != corpus.fingerprint:
        raise UserError(f"the data in {cfg.data.dataset} is not the data run {run.path} was trained on "
                        f"(fingerprint {corpus.fingerprint}, the run's {saved}): resume it on its own data")


def check_resumable(saved: Config, asked: Config, run: RunDir) -> None:
    """The config of the run's last checkpoint (saved) against the one it is resumed with (asked)."""
    a, b = saved.to_dict(), asked.to_dict()
    if a["model"]["name"] != b["model"]["name"]:
        raise UserError(f"checkpoint {run.checkpoint('last')} is of model {a['model']['name']}, but run {run.path} "
                        f"trains model {b['model']['name']}: it is not this run's checkpoint")
    for section in a:
        for key in a[section]:
            if a[section][key] != b[section][key] and not (section == "train" and key in RESUMABLE_CHANGES
                                                           or (section, key) == ("data", "dataset")):
                raise UserError(f"cannot resume {run.path} with {section}.{key}={b[section][key]!r}: "
                                f"the run has {a[section][key]!r}")

