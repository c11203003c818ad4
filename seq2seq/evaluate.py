"""Run dir -> decode a split, and score its references by forced decoding -> sacreBLEU/chrF and
the reference NLL, overall, by source length and by concatenation k -> RUN_DIR/eval/<split>.json,
and beside it the hypotheses and each sentence's BLEU statistics (runfiles.py's records); and
the attention of one sentence's translation, as arrays for plots.py to draw."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from seq2seq import checkpoint
from seq2seq.config import Config, EvalConfig
from seq2seq.data import Pair, concatenate, split_pairs
from seq2seq.device import pick_device
from seq2seq.engines import CTranslate2Engine, Engine, PyTorchEngine
from seq2seq.errors import UserError
from seq2seq.metrics import Sentence, bucket_label, by_length, corpus_scores, position_nll, score_subset, sentence_stats
from seq2seq.models.base import Seq2Seq
from seq2seq.models.build import build_model
from seq2seq.plots import AttentionMap
from seq2seq.rundir import RunDir
from seq2seq.runfiles import Bucket, EvalReport, ExportInfo, Probe, SentenceStats, write_report
from seq2seq.search import count_cut, cut_warning, greedy_attention
from seq2seq.tokenizer import EOS, Tokenizer


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
    exported: ExportInfo | None = None  # an exported model's export.json
    averaged_steps: list[int] | None = None  # of an avg checkpoint: the steps of those it is the mean of

    @property
    def report_name(self) -> str:
        """The checkpoint its reports are named by (RunFiles.report): an exported model holds one,
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


def _load_exported(run: RunDir, exported: ExportInfo, which: str | None, device: str,
                   threads: int | None) -> LoadedRun:
    if which not in (None, exported.checkpoint):
        raise UserError(f"{run.path} holds the {exported.checkpoint} checkpoint of {exported.run}, "
                        f"exported: drop --checkpoint {which}")
    cfg, tok = run.read_config(), Tokenizer.load(run.spm)
    engine = CTranslate2Engine(run.path, exported, tok, cfg.model, pick_device(device), threads)
    return LoadedRun(run, cfg, engine, tok, exported.step, exported.checkpoint, exported=exported)


def evaluate(loaded: LoadedRun, split: str = "test", beam: int | None = None, concat: list[int] | None = None,
             bootstrap: int | None = None, dataset: str | None = None, batching: dict | None = None) -> EvalReport:
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
    hypotheses = {1: hyps}
    # what a paired test between runs needs: each sentence's BLEU statistics, by bucket and by k
    records = [SentenceStats(k=1, range=bucket_label(n, settings.buckets), bleu_stats=s.stats)
               for n, s in zip(words, sentences)]
    probes = []
    for k in dict.fromkeys(settings.concat):
        joined = concatenate(pairs, k)
        if k == 1:
            k_sentences, k_token_nlls, k_scores = sentences, token_nlls, overall
        else:
            hypotheses[k] = scorer.decode([s for s, _ in joined], k)
            k_sentences, k_token_nlls = scorer.score(joined, hypotheses[k])
            k_scores = score_subset(k_sentences, settings.bootstrap)
            records += [SentenceStats(k=k, bleu_stats=s.stats) for s in k_sentences]
        src_words = sum(len(s.split()) for s, _ in joined) / len(joined)
        probes.append(Probe(k=k, src_words=round(src_words, 1), **k_scores, position_nll=position_nll(k_token_nlls)))
    exported = loaded.exported
    report = EvalReport(run=str(loaded.run.path), model=loaded.cfg.model.name, params=loaded.engine.params,
                        **loaded.engine.describe(), dataset=data_cfg.dataset, split=split,
                        exported_from={"run": exported.run, "checkpoint": exported.checkpoint,
                                       "step": exported.step} if exported else None,
                        checkpoint=loaded.which, step=loaded.step, averaged_steps=loaded.averaged_steps,
                        beam=settings.beam, n=len(pairs), **corpus_scores(hyps, refs),
                        **{key: overall[key] for key in overall if key not in ("n", "bleu")},
                        decode_seconds=round(decode_seconds, 2), bootstrap=settings.bootstrap,
                        buckets=[Bucket(**b) for b in by_length(sentences, words, settings.buckets, settings.bootstrap)],
                        concat=probes, position_nll=max(probes, key=lambda c: c.k).position_nll)
    other = data_cfg.dataset if data_cfg.dataset != loaded.cfg.data.dataset else None
    write_report(loaded.run.report(split, settings.beam, other, loaded.report_name), report, hypotheses, records)
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


def attention_map(loaded: LoadedRun, sentence: str, layer: int | None = None) -> AttentionMap:
    """The attention of every output step of the sentence's greedy translation (search.greedy_attention),
    labelled for drawing."""
    model, tok, name = loaded.model, loaded.tok, loaded.cfg.model.name
    if model is None:
        raise UserError(f"{loaded.run.path} is an exported model ({loaded.engine.name}), which gives no attention: "
                        f"draw it from the run it came from, {loaded.exported.run}")
    src, out, weights = greedy_attention(model, tok, sentence, loaded.device, loaded.cfg.eval, layer, f"model {name}")
    title = f"{name} attention"
    if model.attention_layers is not None:
        title += f"\ndecoder layer {(-1 if layer is None else layer) % model.attention_layers}, mean over heads"
    return AttentionMap(source=tok.pieces(src + [EOS]), target=tok.pieces(out + [EOS]), weights=weights.numpy(),
                        translation=tok.decode([out])[0], title=title)


def run_attention(run_dir: str | Path, which: str, sentence: str) -> AttentionMap | None:
    """The attention map of a run's checkpoint on the sentence, computed on the CPU; None for a
    model without attention (rnn, lstm)."""
    try:
        return attention_map(load_run(run_dir, which, "cpu"), sentence)
    except UserError:  # a model without attention
        return None
