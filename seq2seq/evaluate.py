"""Run dir -> decode a split, and score its references by forced decoding -> sacreBLEU/chrF and
the reference NLL, overall, by source length and by concatenation k -> RUN_DIR/eval/<split>.json,
and beside it the hypotheses and each sentence's BLEU statistics."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from seq2seq import checkpoint
from seq2seq.config import Config, DataConfig, EvalConfig
from seq2seq.data import Pair, clean, concatenate, load_split
from seq2seq.device import pick_device
from seq2seq.engines import CTranslate2Engine, Engine, PyTorchEngine
from seq2seq.errors import UserError
from seq2seq.files import atomic_write_json, atomic_write_text
from seq2seq.metrics import Sentence, bucket_label, by_length, corpus_scores, position_nll, score_subset, sentence_stats
from seq2seq.models import build_model
from seq2seq.models.base import Seq2Seq
from seq2seq.rundir import RunDir
from seq2seq.search import count_cut, cut_warning
from seq2seq.tokenizer import Tokenizer

NO_LIMIT = 10**9  # evaluation keeps every non-empty pair, however long


@dataclass
class LoadedRun:
    run: RunDir
    cfg: Config
    engine: Engine  # what decodes and scores
    tok: Tokenizer
    step: int
    which: str  # best | last | avg (of an exported model: the checkpoint it holds)
    model: Seq2Seq | None = None  # the PyTorch model; None for an exported model
    device: torch.device | None = None
    exported: dict | None = None  # an exported model's export.json
    averaged_steps: list[int] | None = None  # of an avg checkpoint: the steps of those it is the mean of

    @property
    def report_name(self) -> str:
        """The checkpoint its reports are named by (report_path): an exported model holds one,
        reported under the plain name that compare reads."""
        return "best" if self.exported else self.which


def load_run(run_dir: str | Path, which: str | None = None, device: str = "auto",
             threads: int | None = None) -> LoadedRun:
    """The model of a run dir, from its checkpoint `which` (default best), on `device`, in eval
    mode; or an exported model (seq2seq export), in its engine. `threads`: the engine's CPU threads."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise UserError(f"run dir not found: {run.path}")
    exported = run.read_export()
    if exported is not None:
        return _load_exported(run, exported, which, device, threads)
    which = which or "best"
    run.require()
    path = run.checkpoint(which)
    if not path.exists():
        if which == "avg":
            hint = f" (write it with: seq2seq average {run.path})"
        else:
            other = "last" if which == "best" else "best"
            hint = f" (try --checkpoint {other})" if run.checkpoint(other).exists() else ""
        raise UserError(f"run {run.path} has no {which} checkpoint{hint}")
    ckpt, cfg, tok = checkpoint.load_of_run(run, which)
    dev = pick_device(device)
    model = build_model(cfg.model, tok.vocab_size)
    checkpoint.load_weights(model, ckpt["model"], path)
    model = model.to(dev).eval()
    return LoadedRun(run, cfg, PyTorchEngine(model, tok, dev, threads), tok, ckpt["progress"]["step"], which,
                     model, dev, averaged_steps=ckpt.get("averaged_steps"))


def _load_exported(run: RunDir, exported: dict, which: str | None, device: str, threads: int | None) -> LoadedRun:
    if which not in (None, exported["checkpoint"]):
        raise UserError(f"{run.path} holds the {exported['checkpoint']} checkpoint of {exported['run']}, "
                        f"exported: drop --checkpoint {which}")
    cfg, tok = run.read_config(), Tokenizer.load(run.spm)
    engine = CTranslate2Engine(run.path, exported, tok, cfg.model, pick_device(device), threads)
    return LoadedRun(run, cfg, engine, tok, exported["step"], exported["checkpoint"], exported=exported)


def evaluate(loaded: LoadedRun, split: str = "test", beam: int | None = None, concat: list[int] | None = None,
             bootstrap: int | None = None, dataset: str | None = None, batching: dict | None = None) -> dict:
    """Decode the split (and its concatenations), score it, write the report and the files beside
    it; returns the report. `batching`: eval.batch_tokens or batch_examples, as asked."""
    asked = {"beam": beam, "concat": concat, "bootstrap": bootstrap, **(batching or {})}
    settings = dataclasses.replace(loaded.cfg.eval, **{k: v for k, v in asked.items() if v is not None})
    settings.check()
    data_cfg = dataclasses.replace(loaded.cfg.data, dataset=dataset or loaded.cfg.data.dataset)
    pairs = split_pairs(data_cfg, split)
    scorer = Scorer(loaded, settings, split)
    started = time.perf_counter()
    srcs, refs = [s for s, _ in pairs], [t for _, t in pairs]
    hyps = scorer.decode(srcs)
    decode_seconds = time.perf_counter() - started
    sentences, token_nlls = scorer.score(pairs, hyps)
    overall = score_subset(sentences, settings.bootstrap)
    words = [len(s.split()) for s in srcs]
    exported = {key: loaded.exported[key] for key in ("run", "checkpoint", "step")} if loaded.exported else None
    report = {"run": str(loaded.run.path), "model": loaded.cfg.model.name, "params": loaded.engine.params,
              **loaded.engine.describe(), "exported_from": exported, "dataset": data_cfg.dataset, "split": split,
              "checkpoint": loaded.which, "step": loaded.step, "averaged_steps": loaded.averaged_steps,
              "beam": settings.beam, "n": len(pairs),
              **corpus_scores(hyps, refs), **{key: overall[key] for key in overall if key not in ("n", "bleu")},
              "decode_seconds": round(decode_seconds, 2), "bootstrap": settings.bootstrap,
              "buckets": by_length(sentences, words, settings.buckets, settings.bootstrap), "concat": []}
    other = data_cfg.dataset if data_cfg.dataset != loaded.cfg.data.dataset else None
    out = report_path(loaded.run, split, settings.beam, other, loaded.report_name)
    files = {hypotheses_path(out, 1): hyps}
    # what a paired test between runs needs: each sentence's BLEU statistics, by bucket and by k
    records = [{"k": 1, "range": bucket_label(n, settings.buckets), "bleu_stats": s.stats}
               for n, s in zip(words, sentences)]
    for k in dict.fromkeys(settings.concat):
        joined = concatenate(pairs, k)
        if k == 1:
            k_hyps, k_sentences, k_token_nlls, k_scores = hyps, sentences, token_nlls, overall
        else:
            k_hyps = scorer.decode([s for s, _ in joined], k)
            k_sentences, k_token_nlls = scorer.score(joined, k_hyps)
            k_scores = score_subset(k_sentences, settings.bootstrap)
            files[hypotheses_path(out, k)] = k_hyps
            records += [{"k": k, "bleu_stats": s.stats} for s in k_sentences]
        src_words = sum(len(s.split()) for s, _ in joined) / len(joined)
        report["concat"].append({"k": k, "src_words": round(src_words, 1), **k_scores,
                                 "position_nll": position_nll(k_token_nlls)})
    report["position_nll"] = max(report["concat"], key=lambda c: c["k"])["position_nll"]
    files[sentences_path(out)] = [json.dumps(r) for r in records]
    _write(out, files, report)
    if scorer.cut:
        print(cut_warning(scorer.cut, loaded.engine.max_positions), file=sys.stderr)
    if scorer.cut_references:
        print(cut_warning(scorer.cut_references, loaded.engine.max_positions, "reference", "NLL covers"),
              file=sys.stderr)
    return report


class Scorer:
    """Decodes sources with a run's engine and scores the references by forced decoding, counting
    the sources and the references cut to fit the model's positions."""

    def __init__(self, loaded: LoadedRun, settings: EvalConfig, split: str):
        self.loaded, self.settings, self.split, self.cut, self.cut_references = loaded, settings, split, 0, 0

    def decode(self, sources: list[str], k: int = 1) -> list[str]:
        engine = self.loaded.engine
        self.cut += count_cut(engine.max_positions, engine.tok, sources)
        return engine.translate(sources, self.settings, progress=f"{self.split} k={k}" if k > 1 else self.split)

    def score(self, pairs: list[Pair], hyps: list[str]) -> tuple[list[Sentence], list[list[float]]]:
        """Each pair's BLEU statistics and reference NLL, and the NLL of each reference token."""
        engine = self.loaded.engine
        self.cut_references += count_cut(engine.max_positions, engine.tok, [t for _, t in pairs])
        token_nlls = engine.reference_nll(pairs, self.settings.batch_tokens)
        stats = sentence_stats(hyps, [t for _, t in pairs])
        return [Sentence(s, sum(nlls), len(nlls)) for s, nlls in zip(stats, token_nlls)], token_nlls


def _write(report_file: Path, files: dict[Path, list[str]], report: dict) -> None:
    """The files beside a report, then the report: written only once everything is decoded, so an
    interrupted eval leaves the old files whole."""
    try:
        report_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {report_file.parent}: {error.strerror}") from None
    for path, lines in files.items():
        atomic_write_text(path, "\n".join(lines) + "\n")
    atomic_write_json(report_file, report)


def split_pairs(data: DataConfig, split: str) -> list[Pair]:
    """The pairs of a split as evaluation scores them: cleaned, none dropped for its length."""
    pairs = clean(load_split(data, split), NO_LIMIT).pairs
    if not pairs:
        raise UserError(f"dataset {data.dataset} has no {split} pairs")
    return pairs


def report_path(run: RunDir, split: str = "test", beam: int = 1, other: str | None = None,
                which: str = "best") -> Path:
    """eval/<split>[.last|.avg][.beamN].json: one report per checkpoint and beam, the best checkpoint's
    under the plain name that `compare` reads. For a dataset other than the run's, in
    eval/<its name>-<hash of its location>/: no two datasets share a folder, and the report on
    the run's own data stays."""
    folder = run.eval
    if other:
        folder /= f"{Path(other.rstrip('/')).name}-{hashlib.sha256(other.encode()).hexdigest()[:8]}"
    name = split + ("" if which == "best" else f".{which}") + ("" if beam == 1 else f".beam{beam}")
    return folder / f"{name}.json"


def hypotheses_path(report: Path, k: int = 1) -> Path:
    """The hypotheses beside a report, of the test sentences or (k > 1) of their concatenations."""
    return report.with_suffix(".hyp.txt" if k == 1 else f".concat{k}.hyp.txt")


def sentences_path(report: Path) -> Path:
    """Beside a report, one JSON line per sentence scored: its k, its bucket (k = 1) and its
    BLEU statistics, in the order of the hypotheses."""
    return report.with_suffix(".sentences.jsonl")
