"""What training saves of itself, and restores when resumed: best.pt when validation BLEU
improves; last.pt, which holds all exact resumption needs (the weights, the optimizer, every
rank's random state and the TrainingState); and with train.keep_best N, the N checkpoints of
highest validation BLEU, for `seq2seq average`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from seq2seq import checkpoint
from seq2seq.config import Config
from seq2seq.corpus import Corpus
from seq2seq.distributed import World
from seq2seq.models.base import Seq2Seq
from seq2seq.rundir import RunDir
from seq2seq.tokenizer import Tokenizer
from seq2seq.update import Update


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


class TrainCheckpoints:
    """The checkpoints of a run being trained by `update` (one rank of `world`)."""

    def __init__(self, cfg: Config, run: RunDir, model: Seq2Seq, update: Update, tok: Tokenizer, corpus: Corpus,
                 device: torch.device, world: World):
        self.cfg, self.run, self.model, self.update, self.world, self.device = cfg, run, model, update, world, device
        self.vocab, self.data = checkpoint.vocab_fingerprint(tok.proto), corpus.fingerprint

    def state(self, progress: TrainingState, rng: list[dict] | None = None) -> dict:
        """The checkpoint: weights, config, vocabulary, data and progress; given every rank's random
        state (`rng`, by rank), resumable: with the optimizer, those states and the world size."""
        state = {"model": self.model.state_dict(), "config": self.cfg.to_dict(), "vocab": self.vocab,
                 "data": self.data, "progress": asdict(progress)}
        if rng is not None:
            state |= {"optimizer": self.update.optimizer.state_dict(), "rng": rng[0], "world_size": self.world.size}
            if self.world.size > 1:
                state["rank_rng"] = rng
        return state

    def rng_state(self) -> dict:
        """This rank's random state (dropout's masks come from it)."""
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save_last(self, progress: TrainingState, elapsed: float) -> None:
        """last.pt, written by rank 0 with every rank's random state, `elapsed` seconds into
        training: called on every rank."""
        rng = self.world.gather(self.rng_state())
        if self.world.main:
            progress.elapsed = elapsed
            checkpoint.save(self.run.checkpoint("last"), self.state(progress, rng))
            self.run.saved("last", progress.step)

    def save_validated(self, progress: TrainingState, bleu: float, improved: bool) -> None:
        """After a validation of BLEU `bleu`: best.pt where it `improved`, and the kept checkpoints."""
        weights = self.state(progress) if improved or self.cfg.train.keep_best > 1 else None
        if improved:
            checkpoint.save(self.run.checkpoint("best"), weights)
            self.run.saved("best", progress.step)
        self.keep(progress, bleu, weights)

    def restore(self, ckpt: dict) -> None:
        """The weights, the optimizer and this rank's random state of a resumed run's last.pt."""
        checkpoint.load_weights(self.model, ckpt["model"], self.run.checkpoint("last"))
        self.update.load_state_dict(ckpt["optimizer"])
        rng = ckpt["rank_rng"][self.world.rank] if "rank_rng" in ckpt else ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def keep(self, progress: TrainingState, bleu: float, weights: dict | None = None) -> None:
        """Keep the train.keep_best checkpoints of highest validation BLEU, for `seq2seq average`;
        with keep_best 1, best.pt alone (as it always was). `weights`: this validation's state, if made."""
        n, p = self.cfg.train.keep_best, progress
        if n == 1:
            return
        ranked = sorted([*p.kept, [bleu, p.step]], key=lambda kept: -kept[0])  # a tie keeps the earlier
        p.kept = ranked[:n]
        if any(step == p.step for _, step in p.kept):
            checkpoint.save(self.run.kept(p.step), weights or self.state(p))
        for _, step in ranked[n:]:
            self.run.kept(step).unlink(missing_ok=True)
