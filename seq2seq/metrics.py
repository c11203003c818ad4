"""sacreBLEU and chrF, the reference's likelihood, BLEU by source length, bootstrap confidence
intervals (of a score, and of the ratio of two BLEU scores) and the paired bootstrap test. Pure
functions.

Scores are sacreBLEU's defaults (13a tokenization, cased, exponential smoothing) on detokenized
text, reported with their signatures so they can be compared across papers and tools.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from sacrebleu.metrics import BLEU, CHRF


@dataclass
class Sentence:
    """What one test sentence adds to the scores of any set of sentences it belongs to."""

    stats: list[int]  # BLEU sufficient statistics of its hypothesis (sentence_stats)
    nll: float  # the reference's negative log-likelihood under the model, nats summed over its tokens
    tokens: int  # the reference's tokens, EOS included


def corpus_scores(hyps: list[str], refs: list[str]) -> dict:
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(hyps, [refs])
    c = chrf.corpus_score(hyps, [refs])
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2),
            "signature": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}}


def sentence_stats(hyps: list[str], refs: list[str]) -> list[list[int]]:
    """Per-sentence BLEU sufficient statistics [hyp_len, ref_len, correct_1..4, total_1..4]:
    corpus BLEU of any subset (a bucket, a bootstrap resample) is a function of their sum."""
    return BLEU()._extract_corpus_statistics(hyps, [refs])


def sentence_bleu(hyps: list[str], refs: list[str]) -> list[float]:
    """sacreBLEU's sentence-level BLEU of each hypothesis (effective order, as it recommends)."""
    bleu = BLEU(effective_order=True)
    return [bleu.sentence_score(h, [r]).score for h, r in zip(hyps, refs)]


def bleu_from_stats(stats: list[list[int]]) -> float:
    if not stats:
        return 0.0
    return bleu_of_total([sum(col) for col in zip(*stats)])


def bleu_of_total(total: Sequence[float]) -> float:
    """Corpus BLEU from the summed statistics of its sentences."""
    total = [int(x) for x in total]
    return BLEU.compute_bleu(correct=total[2:6], total=total[6:10], sys_len=total[0], ref_len=total[1],
                             smooth_method="exp").score


def length_ratio(stats: list[list[int]]) -> float | None:
    """Hypothesis length / reference length in sacreBLEU's tokens (its sys_len / ref_len)."""
    ref_len = sum(s[1] for s in stats)
    return sum(s[0] for s in stats) / ref_len if ref_len else None


def nll_per_token(sentences: list[Sentence]) -> float:
    """The sentences' mean negative log-likelihood per reference token."""
    return sum(s.nll for s in sentences) / max(1, sum(s.tokens for s in sentences))


def position_nll(token_nlls: list[list[float]], bins: int = 10) -> list[float | None]:
    """Mean NLL of reference tokens by their relative position in the reference, j / (n - 1) for
    token j of n, in `bins` equal bins: the first token falls in the first bin, the last (EOS) in
    the last. None for a bin no token falls in (only where every reference is short)."""
    sums, counts = [0.0] * bins, [0] * bins
    for nlls in token_nlls:
        for j, nll in enumerate(nlls):
            b = min(bins - 1, j * bins // max(1, len(nlls) - 1))
            sums[b] += nll
            counts[b] += 1
    return [round(s / c, 3) if c else None for s, c in zip(sums, counts)]


def bootstrap_intervals(sentences: list[Sentence], resamples: int, scores: list[Callable[[list[Sentence]], float]],
                        seed: int = 12345) -> list[tuple[float, float]] | None:
    """95% interval of each corpus score of the sentences: resample sentences with replacement,
    score each resample (Koehn 2004). None when resamples is 0 or there is nothing to resample."""
    if resamples <= 0 or not sentences:
        return None
    rng = random.Random(seed)
    samples = [_resample(sentences, rng) for _ in range(resamples)]
    return [_percentiles_95([score(sample) for sample in samples]) for score in scores]


def ratio_interval(singles: list[list[list[int]]], joined: list[list[list[int]]], k: int, resamples: int,
                   seed: int = 12345) -> tuple[float, float] | None:
    """95% interval of 100 * BLEU(joined) / BLEU(singles), the k=K probe against k=1, averaged over
    the runs of one variant (its seeds): singles[r] and joined[r] are run r's statistics of the test
    sentences and of the joined pairs, joined pair g made of sentences k*g .. k*g + k - 1 (the
    last group may be shorter). The bootstrap resamples the groups: each drawn group brings its
    joined pair and its k single sentences, the same groups for every run, so the two BLEU scores
    move together as the sentences they share do. A resample of BLEU 0 at k=1 counts as an
    infinite ratio. None when resamples is 0 or a set is empty."""
    if resamples <= 0 or not singles or not all(singles) or not all(joined):
        return None
    groups = len(joined[0])
    if any(len(j) != groups or -(-len(s) // k) != groups for s, j in zip(singles, joined)):
        raise ValueError(f"{k} sentences a joined pair do not make {groups} joined pairs")
    per_group = [np.array([np.sum(s[g * k:(g + 1) * k], axis=0) for g in range(groups)]) for s in singles]  # (G, 10)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, groups, groups), minlength=groups)
                       for _ in range(resamples)])  # (R, G): how often each group is drawn
    ratios = np.zeros(resamples)
    for short, long in zip(per_group, [np.array(j) for j in joined]):
        for i, (total_short, total_long) in enumerate(zip(counts @ short, counts @ long)):  # (10,) each
            denominator = bleu_of_total(total_short)
            ratios[i] += 100 * bleu_of_total(total_long) / denominator if denominator else math.inf
    return _percentiles_95(list(ratios / len(singles)))


def finite_bound(x: float | None) -> float | None:
    """An interval's bound rounded to 0.1, None where it is infinite (or not computed)."""
    return None if x is None or math.isinf(x) else round(x, 1)


def _resample(items: list, rng: random.Random) -> list:
    """As many items as there are, drawn with replacement."""
    return [items[rng.randrange(len(items))] for _ in items]


def _percentiles_95(values: list[float]) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of bootstrap values (the bounds of the 95% interval):
    as many values left out above the interval as below it (25 of 1,000 on each side)."""
    ranked = sorted(values)
    out = int(0.025 * len(ranked))
    return ranked[out], ranked[len(ranked) - 1 - out]


def paired_bootstrap(baseline: list[list[int]], system: list[list[int]], resamples: int = 1000,
                     seed: int = 12345) -> float:
    """p-value of the BLEU difference between two systems' statistics on the same sentences:
    sacreBLEU's paired bootstrap test (sacrebleu.significance, with its resamples for the same
    seed): the share of resamples whose difference, centred on their mean difference, is at least
    the observed one. sacreBLEU counts only larger ones, which gives a system against itself
    p = 1/(resamples + 1), "significant"; counting ties too gives it 1."""
    n = len(baseline)
    if n != len(system):
        raise ValueError(f"paired statistics of {n} and {len(system)} sentences")
    rng = np.random.default_rng(seed)
    picks = rng.choice(n, size=(resamples, n), replace=True)  # (R, n) sentence indices
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1)  # (R, n) times each sentence is drawn
    totals = [counts @ np.asarray(stats, dtype=float) for stats in (baseline, system)]  # (R, 10) each
    diffs = np.abs([bleu_of_total(s) - bleu_of_total(b) for b, s in zip(*totals)])  # (R,)
    observed = abs(bleu_from_stats(system) - bleu_from_stats(baseline))
    return (int(np.sum(diffs - diffs.mean() >= observed)) + 1) / (resamples + 1)


def bucket_ranges(edges: list[int]) -> list[tuple[int, int | None]]:
    """[10, 15, 20] -> [(1, 10), (11, 15), (16, 20), (21, None)]: inclusive word counts."""
    lows = [1] + [e + 1 for e in edges]
    return list(zip(lows, edges + [None]))


def range_label(low: int, high: int | None) -> str:
    return f"{low}-{high}" if high is not None else f"{low}+"


def bucket_label(words: int, edges: list[int]) -> str:
    """The label of the source-length bucket a sentence of `words` words falls in."""
    return next(range_label(low, high) for low, high in bucket_ranges(edges) if high is None or words <= high)


def by_length(sentences: list[Sentence], src_words: list[int], edges: list[int], resamples: int,
              seed: int = 12345) -> list[dict]:
    """Scores per source-length bucket (words), each with its sentence count and 95% intervals."""
    labels = [bucket_label(n, edges) for n in src_words]
    return [score_subset([s for s, label in zip(sentences, labels) if label == bucket], resamples, seed)
            | {"range": bucket} for bucket in (range_label(low, high) for low, high in bucket_ranges(edges))]


def score_subset(sentences: list[Sentence], resamples: int, seed: int = 12345) -> dict:
    """BLEU and the reference NLL per token of a set of sentences, each with its 95% interval,
    and the length ratio. BLEU and NLL are None for an empty set."""
    stats = [s.stats for s in sentences]
    intervals = bootstrap_intervals(sentences, resamples, [_bleu, nll_per_token], seed)
    (bleu_low, bleu_high), (nll_low, nll_high) = intervals or [(None, None)] * 2
    return {"n": len(stats), "bleu": round(bleu_from_stats(stats), 2) if stats else None,
            "ci_low": _round(bleu_low, 2), "ci_high": _round(bleu_high, 2),
            "nll": _round(nll_per_token(sentences) if sentences else None, 3),
            "nll_ci_low": _round(nll_low, 3), "nll_ci_high": _round(nll_high, 3),
            "len_ratio": _round(length_ratio(stats), 3)}


def _bleu(sentences: list[Sentence]) -> float:
    return bleu_from_stats([s.stats for s in sentences])


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)
