"""sacreBLEU and chrF, BLEU by source length, and bootstrap confidence intervals. Pure functions.

Scores are sacreBLEU's defaults (13a tokenization, cased, exponential smoothing) on detokenized
text, reported with their signatures so they can be compared across papers and tools.
"""

from __future__ import annotations

import random

from sacrebleu.metrics import BLEU, CHRF


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


def bleu_from_stats(stats: list[list[int]]) -> float:
    if not stats:
        return 0.0
    total = [sum(col) for col in zip(*stats)]
    return BLEU.compute_bleu(correct=total[2:6], total=total[6:10], sys_len=total[0], ref_len=total[1],
                             smooth_method="exp").score


def bootstrap_interval(stats: list[list[int]], resamples: int, seed: int = 12345) -> tuple[float, float] | None:
    """95% interval of corpus BLEU: resample sentences with replacement, score each resample
    (Koehn 2004). None when resamples is 0 or there is nothing to resample."""
    if resamples <= 0 or not stats:
        return None
    rng = random.Random(seed)
    n = len(stats)
    scores = sorted(bleu_from_stats([stats[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    return round(scores[int(0.025 * resamples)], 2), round(scores[min(resamples - 1, int(0.975 * resamples))], 2)


def bucket_ranges(edges: list[int]) -> list[tuple[int, int | None]]:
    """[10, 15, 20] -> [(1, 10), (11, 15), (16, 20), (21, None)]: inclusive word counts."""
    lows = [1] + [e + 1 for e in edges]
    return list(zip(lows, edges + [None]))


def range_label(low: int, high: int | None) -> str:
    return f"{low}-{high}" if high is not None else f"{low}+"


def by_length(stats: list[list[int]], src_words: list[int], edges: list[int], resamples: int,
              seed: int = 12345) -> list[dict]:
    """BLEU per source-length bucket (words), each with its sentence count and 95% interval."""
    out = []
    for low, high in bucket_ranges(edges):
        members = [s for s, n in zip(stats, src_words) if n >= low and (high is None or n <= high)]
        out.append(score_subset(members, resamples, seed) | {"range": range_label(low, high)})
    return out


def score_subset(stats: list[list[int]], resamples: int, seed: int = 12345) -> dict:
    interval = bootstrap_interval(stats, resamples, seed)
    return {"n": len(stats), "bleu": round(bleu_from_stats(stats), 2) if stats else None,
            "ci_low": interval[0] if interval else None, "ci_high": interval[1] if interval else None}
