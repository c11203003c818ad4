"""Greedy and beam search, written once against the Seq2Seq interface, and the loop that
translates a whole corpus in length-sorted batches."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from seq2seq.batching import batched_length, collate, decoding_batches, max_ids
from seq2seq.config import EvalConfig
from seq2seq.device import autocast, resolve_precision
from seq2seq.errors import UserError
from seq2seq.models.base import Seq2Seq, select
from seq2seq.progress import ProgressBar
from seq2seq.tokenizer import BOS, EOS, PAD, Tokenizer


class Hypothesis(NamedTuple):
    """One translation as search found it."""

    score: float  # log p(tokens, EOS) / (len(tokens) + 1)^length_penalty: what beam search ranks by
    tokens: list[int]  # EOS excluded
    logprobs: list[float]  # log p of each token given the source and the tokens before it, EOS's last
    attention: Tensor | None = None  # (len(tokens) + 1, S_b): where each step looked over the source's
    # S_b real tokens (EOS included, padding not), when asked and the model has attention


@torch.no_grad()
def greedy(model: Seq2Seq, src: Tensor, src_mask: Tensor, max_len: Tensor, need_weights: bool = False,
           layer: int = -1, length_penalty: float = 1.0) -> list[Hypothesis]:
    """Batched greedy search. max_len (B,) output tokens per sentence, EOS excluded. Returns each
    sentence's hypothesis, with, when asked, its attention (for a Transformer, decoder layer `layer`'s)."""
    B = src.size(0)
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    prev = torch.full((B,), BOS, dtype=torch.long, device=src.device)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    never = torch.tensor([PAD, BOS], device=src.device)  # tokens no output may contain
    steps, logps, weights = [], [], []
    for t in range(int(max_len.max()) + 1):
        logits, state, attn = model.decode_step(memory, state, prev, need_weights, layer)
        prev = logits.index_fill(1, never, float("-inf")).argmax(-1)  # (B,)
        prev = torch.where(t >= max_len, torch.full_like(prev, EOS), prev)
        prev = prev.masked_fill(finished, PAD)
        steps.append(prev)
        logps.append(torch.log_softmax(logits.float(), dim=-1).gather(1, prev.unsqueeze(1)).squeeze(1))  # (B,)
        if need_weights and attn is not None:
            weights.append(attn)
        finished |= prev == EOS
        if bool(finished.all()):
            break
    out, logp = torch.stack(steps, 1).tolist(), torch.stack(logps, 1).tolist()  # (B, T_out) each
    attn_all = torch.stack(weights, 1) if weights else None  # (B, T_out, S)
    src_lens = src_mask.sum(1).tolist()
    found = []
    for b, row in enumerate(out):
        tokens = _strip(row)
        n = len(tokens) + 1  # EOS included
        found.append(Hypothesis(sum(logp[b][:n]) / n ** length_penalty, tokens, logp[b][:n],
                                None if attn_all is None else attn_all[b, :n, :src_lens[b]]))
    return found


def beam_search(model: Seq2Seq, src: Tensor, src_mask: Tensor, max_len: Tensor, beam: int,
                length_penalty: float = 1.0) -> list[list[int]]:
    """The best hypothesis of each sentence's beam (see beam_hypotheses). beam=1 is greedy search."""
    return [found[0].tokens if found else [] for found in
            beam_hypotheses(model, src, src_mask, max_len, beam, length_penalty)]


@torch.no_grad()
def beam_hypotheses(model: Seq2Seq, src: Tensor, src_mask: Tensor, max_len: Tensor, beam: int,
                    length_penalty: float = 1.0, need_weights: bool = False, layer: int = -1) -> list[list[Hypothesis]]:
    """Batched beam search. Each step keeps the `beam` best unfinished prefixes per sentence; a
    prefix ending in EOS among the top `beam` candidates is finished, scored log p / len^alpha
    (alpha = length_penalty), and a sentence is done when it holds `beam` finished hypotheses.
    At max_len only EOS is allowed, scored with its log-probability, so every sentence ends and
    a hypothesis cut at the limit pays for its EOS like any other. Returns each sentence's finished
    hypotheses, best first, with their attention when asked (as greedy)."""
    B, K, device = src.size(0), beam, src.device
    memory = model.encode(src, src_mask)
    memory = select(memory, torch.arange(B, device=device).repeat_interleave(K))  # (B*K, ...)
    state = model.init_state(memory)
    scores = torch.zeros(B, K, device=device)  # cumulative log-probabilities of the live prefixes
    scores[:, 1:] = float("-inf")  # at the start all K beams are the same prefix: keep one
    prefixes = torch.empty(B * K, 0, dtype=torch.long, device=device)
    prefix_logp = torch.empty(B * K, 0, device=device)  # (B*K, t) log p of each prefix token
    seen = None  # (B*K, t, S) where each prefix step looked, when asked
    prev = torch.full((B * K,), BOS, dtype=torch.long, device=device)
    limit = max_len.repeat_interleave(K)  # (B*K,)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    src_lens = src_mask.sum(1).tolist()
    for t in range(int(max_len.max()) + 1):
        logits, state, attn = model.decode_step(memory, state, prev, need_weights, layer)
        logp = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        V = logp.size(-1)
        logp[:, [PAD, BOS]] = float("-inf")
        at_limit = t >= limit  # (B*K,)
        # at the limit only EOS may follow, at the model's own price for it
        logp[at_limit] = torch.where(torch.arange(V, device=device) == EOS, logp[at_limit], float("-inf"))
        cand = (scores.view(-1, 1) + logp).view(B, K * V)  # (B, K*V)
        top, idx = cand.topk(2 * K, dim=1)  # (B, 2K): enough to keep K unfinished
        origin, token = idx // V, idx % V  # (B, 2K) beam index and token
        last = logp.view(B, K * V).gather(1, idx)  # (B, 2K) log p of each candidate's last token
        looked = None  # (B*K, t+1, S): seen, and this step
        if need_weights and attn is not None:
            looked = attn.unsqueeze(1) if seen is None else torch.cat([seen, attn.unsqueeze(1)], dim=1)
        is_eos = (token == EOS) & torch.isfinite(top)
        for b, j in (is_eos[:, :K]).nonzero().tolist():  # finished hypotheses among the top K
            if len(finished[b]) < K:
                row = b * K + int(origin[b, j])
                words = prefixes[row].tolist()
                finished[b].append(Hypothesis(float(top[b, j]) / (len(words) + 1) ** length_penalty, words,
                                              prefix_logp[row].tolist() + [float(last[b, j])],
                                              None if looked is None else looked[row, :, :src_lens[b]]))
        if all(len(f) >= K for f in finished):
            break
        keep = top.masked_fill(is_eos, float("-inf")).topk(K, dim=1).indices  # (B, K) of the 2K
        scores = top.gather(1, keep)
        rows = (torch.arange(B, device=device) * K).unsqueeze(1) + origin.gather(1, keep)  # (B, K)
        rows = rows.view(-1)
        prev = token.gather(1, keep).view(-1)  # (B*K,)
        prefixes = torch.cat([prefixes[rows], prev.unsqueeze(1)], dim=1)  # (B*K, t+1)
        prefix_logp = torch.cat([prefix_logp[rows], last.gather(1, keep).view(-1, 1)], dim=1)  # (B*K, t+1)
        seen = None if looked is None else looked[rows]
        state = select(state, rows)
    return [sorted(f, key=lambda h: (h.score, h.tokens), reverse=True) for f in finished]



def translate(model: Seq2Seq, tok: Tokenizer, sources: list[str], device: torch.device, settings: EvalConfig,
              progress: str | None = None) -> list[str]:
    """Detokenized translations of `sources`, in their order, by greedy (settings.beam 1) or beam
    search; matrix products in settings.precision (fp32 runs in TF32 on CUDA, see pick_device;
    beam search ranks hypotheses by fp32 log-probabilities either way); with `progress`, a bar so
    labelled on a terminal. Greedy search is beam search with one beam, except where two bf16
    logits tie for the top (each may take another of them)."""
    return tok.decode([found.tokens for found in best(model, tok, sources, device, settings, progress=progress)])


def best(model: Seq2Seq, tok: Tokenizer, sources: list[str], device: torch.device, settings: EvalConfig,
         need_weights: bool = False, progress: str | None = None) -> list[Hypothesis]:
    """The hypothesis `translate` gives each source, in the sources' order: greedy search's
    (settings.beam 1) or the best of the beam; with its attention when asked."""
    def search(src: Tensor, src_mask: Tensor, max_len: Tensor) -> list[Hypothesis]:
        if settings.beam == 1:
            return greedy(model, src, src_mask, max_len, need_weights, length_penalty=settings.length_penalty)
        return [found[0] for found in beam_hypotheses(model, src, src_mask, max_len, settings.beam,
                                                      settings.length_penalty, need_weights)]

    return _decode(model, tok, sources, device, search, settings, progress)


def nbest(model: Seq2Seq, tok: Tokenizer, sources: list[str], device: torch.device, settings: EvalConfig,
          n: int, progress: str | None = None) -> list[list[tuple[float, str]]]:
    """The n best (score, translation) of each source's beam, best first, in the sources' order;
    the score is beam search's log p / len^length_penalty."""
    def search(src: Tensor, src_mask: Tensor, max_len: Tensor) -> list[list[Hypothesis]]:
        return [found[:n] for found in
                beam_hypotheses(model, src, src_mask, max_len, settings.beam, settings.length_penalty)]

    found = _decode(model, tok, sources, device, search, settings, progress)
    return [list(zip([h.score for h in hyps], tok.decode([h.tokens for h in hyps]))) for hyps in found]


def greedy_attention(model: Seq2Seq, tok: Tokenizer, sentence: str, device: torch.device, settings: EvalConfig,
              layer: int | None = None, name: str = "this model") -> tuple[list[int], list[int], Tensor]:
    """Translate one sentence greedily, keeping where each output step looked: its source ids,
    output ids and attention weights (T_out + 1, S), EOS included on both sides. For the
    Transformer, `layer` picks the decoder layer (default the last) whose cross-attention,
    averaged over heads, is returned. `name` names the model in errors."""
    n = model.attention_layers
    if n is not None and layer is not None and not -n <= layer < n:
        raise UserError(f"--layer must be between {-n} and {n - 1}: the model has {n} decoder layers")
    if n is None and layer is not None:
        raise UserError(f"--layer picks a Transformer decoder layer; {name} has no layers of attention to choose from")
    def search(src: Tensor, src_mask: Tensor, max_len: Tensor) -> list[Hypothesis]:
        return greedy(model, src, src_mask, max_len, need_weights=True, layer=-1 if layer is None else layer)

    found, = _decode(model, tok, [sentence], device, search, settings, None)
    if found.attention is None:
        raise UserError(f"{name} has no attention to plot: --attention-plot needs bahdanau or transformer")
    return fitted_ids(model.max_positions, tok, [sentence])[0], found.tokens, found.attention.float().cpu()


def _decode(model: Seq2Seq, tok: Tokenizer, sources: list[str], device: torch.device, search: Callable,
            settings: EvalConfig, progress: str | None) -> list:
    """search(src, src_mask, max_len) on length-sorted batches of the sources; its results in the
    sources' order."""
    was_training = model.training
    model.eval()
    ids = fitted_ids(model.max_positions, tok, sources)
    src_lens = [batched_length(len(s)) for s in ids]
    out: list = [None] * len(sources)
    with ProgressBar(len(sources), progress, active=progress is not None) as bar:
        for batch in decoding_batches(src_lens, settings.batch_tokens, settings.batch_examples):
            b = collate([ids[i] for i in batch], [[] for _ in batch]).to(device)
            max_len = output_limit(b.src_mask.sum(1), settings.max_len_a, settings.max_len_b, model.max_positions)
            with autocast(device, resolve_precision(settings.precision, device)):
                found = search(b.src, b.src_mask, max_len)
            for i, hyp in zip(batch, found):
                out[i] = hyp
            bar.advance(len(batch))
    model.train(was_training)
    return out


def fitted_ids(max_positions: int | None, tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of the texts (sources, or references scored by forced decoding), each cut to what a
    model's positions hold (EOS follows; None: no limit)."""
    return fit(max_positions, tok.encode(texts))


def fit(max_positions: int | None, ids: list[list[int]]) -> list[list[int]]:
    """Token id lists, each cut to what a model's positions hold (None: no limit)."""
    return [s[:max_ids(max_positions)] if max_positions else s for s in ids]


def count_cut(max_positions: int | None, tok: Tokenizer, sources: list[str]) -> int:
    """How many sources are longer than a model's positions hold: fitted_ids() cuts them."""
    return sum(len(ids) > max_ids(max_positions) for ids in tok.encode(sources)) if max_positions else 0


def cut_warning(n: int, max_positions: int, side: str = "source", cost: str = "translation covers") -> str:
    """What cutting n sources (or references) to the model's positions costs: their translation
    (their NLL, ...) covers their beginning only."""
    return (f"warning: {n} {side}{'s' * (n != 1)} longer than the model's {max_ids(max_positions)} tokens "
            f"{'were' if n != 1 else 'was'} cut to fit; {'their' if n != 1 else 'its'} {cost} the beginning only")


def output_limit(src_len: Tensor, a: float, b: int, max_positions: int | None = None) -> Tensor:
    """Longest output per sentence, EOS excluded: a * source length (EOS included) + b, within the
    model's positions. src_len (B,) -> (B,)"""
    max_len = (src_len * a + b).long()  # (B,)
    return max_len.clamp(max=max_ids(max_positions)) if max_positions else max_len


def _strip(row: list[int]) -> list[int]:
    """Tokens up to (not including) the first EOS."""
    return row[:row.index(EOS)] if EOS in row else row
