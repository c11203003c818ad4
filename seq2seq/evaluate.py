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
from seq2seq.config import Config, DataConfig
from seq2seq.data import Pair, clean, concatenate, load_split
from seq2seq.device import pick_device
from seq2seq.errors import UserError
from seq2seq.files import atomic_write_json, atomic_write_text
from seq2seq.likelihood import reference_nll
from seq2seq.metrics import Sentence, bucket_label, by_length, corpus_scores, position_nll, score_subset, sentence_stats
from seq2seq.models import build_model
from seq2seq.models.base import Seq2Seq, count_parameters
from seq2seq.rundir import RunDir
from seq2seq.search import count_cut, cut_warning, translate
from seq2seq.tokenizer import Tokenizer

NO_LIMIT = 10**9  # evaluation keeps every non-empty pair, however long


@dataclass
class Loaded:
    run: RunDir
    cfg: Config
    model: Seq2Seq
    tok: Tokenizer
    device: torch.device
    step: int
    which: str  # best | last | avg


def load_run(run_dir: str | Path, which: str = "best", device: str = "auto") -> Loaded:
    """The model of a run dir, from its checkpoint, on `device`, in eval mode."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise UserError(f"run dir not found: {run.path}")
    run.require()
    path = run.checkpoint(which)
    if not path.exists():
        if which == "avg":
            hint = f" (write it with: seq2seq average {run.path})"
        else:
            other = "last" if which == "best" else "best"
            hint = f" (try --checkpoint {other})" if run.checkpoint(other).exists() else ""
        raise UserError(f"run {run.path} has no {which} checkpoint{hint}")
    ckpt = checkpoint.load(path)
    cfg = Config.from_dict(ckpt["config"], where=str(path))
    if cfg.model != run.read_config().model:
        raise UserError(f"checkpoint {path} belongs to another run: its model differs from {run.config}")
    tok = Tokenizer.load(run.spm)
    if ckpt.get("vocab") != checkpoint.vocab_fingerprint(tok.proto):
        raise UserError(f"checkpoint {path} belongs to another run: its vocabulary differs from {run.spm}")
    dev = pick_device(device)
    model = build_model(cfg.model, tok.vocab_size)
    checkpoint.load_weights(model, ckpt["model"], path)
    return Loaded(run, cfg, model.to(dev).eval(), tok, dev, ckpt["progress"]["step"], which)


def evaluate(loaded: Loaded, split: str = "test", beam: int | None = None, concat: list[int] | None = None,
             bootstrap: int | None = None, dataset: str | None = None) -> dict:
    cfg = loaded.cfg
    asked = {"beam": beam, "concat": concat, "bootstrap": bootstrap}
    e = dataclasses.replace(cfg.eval, **{k: v for k, v in asked.items() if v is not None})
    e.check()
    data_cfg = dataclasses.replace(cfg.data, dataset=dataset or cfg.data.dataset)
    pairs = split_pairs(data_cfg, split)

    cut = 0

    def decode(sources: list[str], k: int = 1) -> list[str]:
        nonlocal cut
        cut += count_cut(loaded.model, loaded.tok, sources)
        return translate(loaded.model, loaded.tok, sources, loaded.device, e.beam, e.length_penalty,
                         e.max_len_a, e.max_len_b, e.batch_tokens, e.precision,
                         progress=f"{split} k={k}" if k > 1 else split)

    def score(joined: list[Pair], hyps: list[str]) -> tuple[list[Sentence], list[list[float]]]:
        """Each pair's BLEU statistics and reference NLL, and the NLL of each reference token."""
        token_nlls = reference_nll(loaded.model, loaded.tok, joined, loaded.device, e.batch_tokens)
        stats = sentence_stats(hyps, [t for _, t in joined])
        return [Sentence(s, sum(nlls), len(nlls)) for s, nlls in zip(stats, token_nlls)], token_nlls

    started = time.perf_counter()
    srcs, refs = [s for s, _ in pairs], [t for _, t in pairs]
    hyps = decode(srcs)
    decode_seconds = time.perf_counter() - started
    sentences, token_nlls = score(pairs, hyps)
    overall = score_subset(sentences, e.bootstrap)
    words = [len(s.split()) for s in srcs]
    report = {"run": str(loaded.run.path), "model": cfg.model.name, "params": count_parameters(loaded.model),
              "dataset": data_cfg.dataset, "split": split, "checkpoint": loaded.which, "step": loaded.step,
              "beam": e.beam, "n": len(pairs),
              **corpus_scores(hyps, refs), **{key: overall[key] for key in overall if key not in ("n", "bleu")},
              "decode_seconds": round(decode_seconds, 2), "bootstrap": e.bootstrap,
              "buckets": by_length(sentences, words, e.buckets, e.bootstrap),
              "concat": []}
    other = data_cfg.dataset if data_cfg.dataset != cfg.data.dataset else None
    out = report_path(loaded.run, split, e.beam, other, loaded.which)
    files = {hypotheses_path(out, 1): hyps}
    # what a paired test between runs needs: each sentence's BLEU statistics, by bucket and by k
    records = [{"k": 1, "range": bucket_label(n, e.buckets), "bleu_stats": s.stats} for n, s in zip(words, sentences)]
    for k in dict.fromkeys(e.concat):
        joined = concatenate(pairs, k)
        k_hyps = hyps if k == 1 else decode([s for s, _ in joined], k)
        k_sentences, k_token_nlls = (sentences, token_nlls) if k == 1 else score(joined, k_hyps)
        src_words = sum(len(s.split()) for s, _ in joined) / len(joined)
        k_scores = overall if k == 1 else score_subset(k_sentences, e.bootstrap)
        report["concat"].append({"k": k, "src_words": round(src_words, 1), **k_scores,
                                 "position_nll": position_nll(k_token_nlls)})
        if k > 1:
            files[hypotheses_path(out, k)] = k_hyps
            records += [{"k": k, "bleu_stats": s.stats} for s in k_sentences]
    report["position_nll"] = max(report["concat"], key=lambda c: c["k"])["position_nll"]
    files[sentences_path(out)] = [json.dumps(r) for r in records]
    try:  # written only once everything is decoded: an interrupted eval leaves the old files whole
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {out.parent}: {e.strerror}") from None
    for path, lines in files.items():
        atomic_write_text(path, "\n".join(lines) + "\n")
    atomic_write_json(out, report)
    if cut:
        print(cut_warning(cut, loaded.model), file=sys.stderr)
    return report


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
