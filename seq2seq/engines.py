"""What translate, eval and score ask of a model, whichever library runs it: translations,
n-best lists and the references' NLL. One decoding path per engine: PyTorch's is search.py and
likelihood.py; CTranslate2's (an exported model, seq2seq/export.py) is CTranslate2's own search,
given the same sources, batches and output limits as search.py gives PyTorch.

Where they agree and differ (float32, the same weights): greedy search gives the same tokens
(up to float rounding between near-tied logits); beam search the same best hypothesis, with the
same score, for every sentence whose search ends before its output limit. At the limit search.py
allows only EOS and charges it, where CTranslate2 keeps the beams as they are, and CTranslate2's
limit is its batch's longest (outputs are cut to their own sentence's limit after). Lower n-best
entries may differ: on the step where a sentence's beam fills, search.py keeps the best of the
hypotheses that end up to the beam width, CTranslate2 all of them. search.py never emits PAD or
BOS; CTranslate2 is not told to suppress them, as that renormalizes its probabilities over the
other tokens and so moves beam scores; a trained model gives them next to none (neither is ever
a target). With eval.length_penalty 0 CTranslate2 stops a sentence once its best beam ends,
search.py once `beam` hypotheses have.
"""

from __future__ import annotations

import logging
import sys
from abc import ABC, abstractmethod
from pathlib import Path

import torch

from seq2seq.batching import batched_length, decoding_batches, token_batches
from seq2seq.config import EvalConfig
from seq2seq.data import Pair
from seq2seq.errors import UserError, first_line
from seq2seq.likelihood import reference_nll
from seq2seq.models.base import Seq2Seq, count_parameters
from seq2seq.models.configs import TransformerConfig
from seq2seq.progress import ProgressBar
from seq2seq.runfiles import ExportInfo
from seq2seq.search import Hypothesis, best, fitted_ids, nbest, output_limit, translate
from seq2seq.tokenizer import EOS, Tokenizer

Hypotheses = list[list[tuple[float, str]]]  # each source's (score, translation), best first


def import_ctranslate2():
    try:
        import ctranslate2
    except ImportError:
        raise UserError('CTranslate2 is not installed: pip install -e ".[export]"') from None
    ctranslate2.set_log_level(logging.ERROR)  # its warnings are said here, in one line each
    return ctranslate2


class Engine(ABC):
    name: str
    tok: Tokenizer
    max_positions: int | None  # the longest source or output the model takes (None: no limit)
    attention_layers: int | None  # decoder layers with source attention (None: one, or none)
    params: int
    threads: int

    @abstractmethod
    def translate(self, sources: list[str], settings: EvalConfig, progress: str | None = None) -> list[str]:
        """Detokenized translations, greedy (settings.beam 1) or by beam search, in the sources' order."""

    @abstractmethod
    def nbest(self, sources: list[str], settings: EvalConfig, n: int, progress: str | None = None) -> Hypotheses:
        """The n best of each source's beam, scored log p / len^length_penalty (EOS counted)."""

    @abstractmethod
    def best(self, sources: list[str], settings: EvalConfig, need_weights: bool = False) -> list[Hypothesis]:
        """The hypothesis `translate` gives each source, with its tokens' log p and, asked for,
        where each step looked (the last decoder layer's source attention, mean over heads)."""

    @abstractmethod
    def reference_nll(self, pairs: list[Pair], batch_tokens: int) -> list[list[float]]:
        """The NLL (nats) of each reference token, EOS last, in the pairs' order (forced decoding)."""

    def describe(self) -> dict:
        """What an eval report records of the engine."""
        return {"engine": self.name, "threads": self.threads}


class PyTorchEngine(Engine):
    name = "pytorch"

    def __init__(self, model: Seq2Seq, tok: Tokenizer, device: torch.device, threads: int | None = None):
        if threads is not None:
            torch.set_num_threads(threads)
        self.model, self.tok, self.device = model, tok, device
        self.max_positions, self.params, self.threads = model.max_positions, count_parameters(model), \
            torch.get_num_threads()
        self.attention_layers = model.attention_layers

    def translate(self, sources, settings, progress=None):
        return translate(self.model, self.tok, sources, self.device, settings, progress)

    def nbest(self, sources, settings, n, progress=None):
        return nbest(self.model, self.tok, sources, self.device, settings, n, progress)

    def best(self, sources, settings, need_weights=False):
        return best(self.model, self.tok, sources, self.device, settings, need_weights)

    def reference_nll(self, pairs, batch_tokens):
        return reference_nll(self.model, self.tok, pairs, self.device, batch_tokens)


class CTranslate2Engine(Engine):
    """An exported model (its directory and export.json), run by ctranslate2.Translator on
    `threads` threads (torch's count where not given), which decode that many batches at once, one
    thread each (CTranslate2's inter_threads): all batches are handed over together."""

    name = "ctranslate2"

    def __init__(self, path: Path, exported: ExportInfo, tok: Tokenizer, cfg: TransformerConfig, device: torch.device,
                 threads: int | None = None):
        ctranslate2 = import_ctranslate2()
        self.threads = threads or torch.get_num_threads()
        try:  # `threads` batches at once, one thread each: this size of model gains nothing from a second
            self.translator = ctranslate2.Translator(str(path), device=device.type, inter_threads=self.threads,
                                                     intra_threads=1)
        except (RuntimeError, ValueError) as e:
            raise UserError(f"CTranslate2 cannot load {path} ({first_line(e)})") from None
        self.tok, self.max_positions, self.params = tok, cfg.max_positions, exported.params
        self.attention_layers = cfg.dec_layers
        self.quantization = exported.quantization
        if self.quantization == "bfloat16" and self.translator.compute_type != "bfloat16":
            print(f"warning: this {device.type} does not compute in bfloat16: CTranslate2 runs {path} in "
                  f"{self.translator.compute_type}", file=sys.stderr)
        self.pieces = tok.pieces(list(range(tok.vocab_size)))
        self.index = {piece: i for i, piece in enumerate(self.pieces)}

    def describe(self) -> dict:
        """The quantization stored, and the compute type it runs in here (int8 or float32 where
        the device lacks it: bfloat16 on most CPUs)."""
        return {**super().describe(), "quantization": self.quantization,
                "compute_type": self.translator.compute_type}

    def translate(self, sources, settings, progress=None):
        return [found[0][1] if found else "" for found in self.nbest(sources, settings, 1, progress)]

    def nbest(self, sources, settings, n, progress=None):
        out: Hypotheses = [[] for _ in sources]
        ids = fitted_ids(self.max_positions, self.tok, sources)
        for i, result, limit in self._search(ids, settings, n, progress):
            tokens = [self._ids(pieces, limit) for pieces in result.hypotheses]
            out[i] = list(zip(result.scores, self.tok.decode(tokens)))
        return out

    def best(self, sources, settings, need_weights=False):
        """The best hypothesis of CTranslate2's search; its tokens' log p by forced decoding of
        them (score_batch), and asked for, where each step looked, by forcing them as the prefix
        of a greedy search (beam search's own first row of attention differs from PyTorch's)."""
        ids = fitted_ids(self.max_positions, self.tok, sources)
        found = [Hypothesis(0.0, [], [])] * len(sources)
        for i, result, limit in self._search(ids, settings, 1, None):
            found[i] = Hypothesis(result.scores[0], self._ids(result.hypotheses[0], limit), [])
        src = [self._pieces(s) for s in ids]
        tgt = [self._pieces(h.tokens + [EOS]) for h in found]
        scored = self.translator.score_batch(src, [t[:-1] for t in tgt], max_input_length=0)
        found = [h._replace(logprobs=list(r.log_probs)) for h, r in zip(found, scored)]
        if not need_weights:
            return found
        forced = self.translator.translate_batch(src, target_prefix=tgt, beam_size=1, return_attention=True,
                                                 return_end_token=True, max_decoding_length=max(map(len, tgt)),
                                                 min_decoding_length=0, max_input_length=0)
        out = []
        for h, result in zip(found, forced):  # one row per output token and EOS, over the source's tokens
            attention = torch.tensor(result.attention[0][:len(h.tokens) + 1])  # (T_out + 1, S_b - 1)
            # CTranslate2 leaves out the EOS it adds to the source; each row sums to 1 with it
            out.append(h._replace(attention=torch.cat([attention, 1 - attention.sum(1, keepdim=True)], 1)))
        return out  # attention (T_out + 1, S_b)

    def _search(self, ids: list[list[int]], settings: EvalConfig, n: int, progress: str | None):
        """CTranslate2's greedy or beam search of the sources' token ids (fitted_ids) on search.py's
        batches, with its output limits: each source's index, its result and its limit in output tokens."""
        lengths = [batched_length(len(s)) for s in ids]
        limits = output_limit(torch.tensor(lengths), settings.max_len_a, settings.max_len_b,
                              self.max_positions).tolist()
        batches = decoding_batches(lengths, settings.batch_tokens, settings.batch_examples)
        pending = [self.translator.translate_batch(  # queued: the translator's threads take them in turn
            [self._pieces(ids[i]) for i in batch], beam_size=settings.beam, num_hypotheses=n,
            length_penalty=settings.length_penalty, return_scores=True, return_end_token=True,
            max_decoding_length=max(limits[i] for i in batch) + 1,  # + EOS, which search.py forces there
            min_decoding_length=0, max_input_length=0, asynchronous=True) for batch in batches]
        with ProgressBar(len(ids), progress, active=progress is not None) as bar:
            for batch, results in zip(batches, pending):
                for i, result in zip(batch, results):
                    yield i, result.result(), limits[i]
                bar.advance(len(batch))

    def reference_nll(self, pairs, batch_tokens):
        src = fitted_ids(self.max_positions, self.tok, [s for s, _ in pairs])
        tgt = fitted_ids(self.max_positions, self.tok, [t for _, t in pairs])
        out: list[list[float]] = [[] for _ in pairs]
        lengths = [batched_length(len(s)) for s in src], [batched_length(len(t)) for t in tgt]
        batches = token_batches(*lengths, batch_tokens)
        pending = [self.translator.score_batch([self._pieces(src[i]) for i in batch],
                                               [self._pieces(tgt[i]) for i in batch], max_input_length=0,
                                               asynchronous=True) for batch in batches]
        for batch, results in zip(batches, pending):
            for i, result in zip(batch, results):
                out[i] = [-p for p in result.result().log_probs]  # the reference's tokens and EOS
        return out

    def _pieces(self, ids: list[int]) -> list[str]:
        return [self.pieces[i] for i in ids]

    def _ids(self, pieces: list[str], limit: int) -> list[int]:
        """A hypothesis's token ids up to its EOS, and at most `limit` of them (where search.py ends it)."""
        ids = [self.index[piece] for piece in pieces]
        return (ids[:ids.index(EOS)] if EOS in ids else ids)[:limit]
