"""The figures of an eval report from per-sentence statistics: the reference NLL and its
interval, the length ratio, NLL by position, the paired bootstrap test between two systems, and
the interval of the ratio of two BLEU scores."""

import random
import statistics

import pytest
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from seq2seq.metrics import Sentence, bleu_from_stats, bootstrap_intervals, bucket_label, by_length, nll_per_token, \
    paired_bootstrap, position_nll, ratio_interval, score_subset, sentence_stats
from tests.conftest import EN


def corrupt(refs: list[str], share: float, seed: int) -> list[str]:
    """A system's output: the references with about `share` of their words replaced at random."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() > share else rng.choice(EN) for w in ref.split()) for ref in refs]


@pytest.fixture(scope="module")
def refs() -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(EN) for _ in range(rng.randint(4, 12))) for _ in range(300)]


def test_the_paired_test_is_sacrebleus_on_the_whole_test_set(refs):
    a, b = corrupt(refs, 0.30, seed=1), corrupt(refs, 0.32, seed=2)
    _, scores = PairedTest([("a", a), ("b", b)], {"BLEU": BLEU()}, [refs], test_type="bs")()
    p = paired_bootstrap(sentence_stats(a, refs), sentence_stats(b, refs))
    assert p == scores["BLEU"][1].p_value
    assert 0.05 < p < 0.5  # a close call, not the smallest p-value the resamples allow


def test_a_system_against_itself_is_not_significant(refs):
    stats = sentence_stats(corrupt(refs, 0.3, seed=1), refs)
    assert paired_bootstrap(stats, stats) == 1.0  # sacreBLEU's test gives it 1/1001


def test_a_much_better_system_is_significant(refs):
    good, bad = sentence_stats(corrupt(refs, 0.1, seed=1), refs), sentence_stats(corrupt(refs, 0.6, seed=2), refs)
    assert paired_bootstrap(bad, good) < 0.01 and paired_bootstrap(good, bad) < 0.01
    with pytest.raises(ValueError):
        paired_bootstrap(good, bad[1:])


def test_nll_per_token_with_its_interval_and_the_length_ratio(refs):
    hyps = corrupt(refs, 0.3, seed=1)
    hyps = [h + " extra" * (i % 3) for i, h in enumerate(hyps)]  # longer than the references
    rng = random.Random(3)
    tokens = [len(r.split()) + 1 for r in refs]
    nlls = [rng.uniform(0.5, 3.0) * n for n in tokens]
    scores = score_subset([Sentence(s, nll, n) for s, nll, n in zip(sentence_stats(hyps, refs), nlls, tokens)], 200)
    assert scores["nll"] == round(sum(nlls) / sum(tokens), 3)
    assert scores["nll_ci_low"] < scores["nll"] < scores["nll_ci_high"]
    corpus = BLEU().corpus_score(hyps, [refs])
    assert scores["len_ratio"] == round(corpus.sys_len / corpus.ref_len, 3) > 1
    assert scores["bleu"] == round(corpus.score, 2)
    assert score_subset([], 200) | {"n": None} == dict.fromkeys(scores, None)


def test_nll_by_position_runs_from_the_first_token_to_the_last():
    assert position_nll([[float(j) for j in range(20)]]) == [0.5 + 2 * b for b in range(10)]
    # a two-token reference: its first token in the first bin, its last in the last
    assert position_nll([[1.0, 3.0]]) == [1.0] + [None] * 8 + [3.0]
    assert position_nll([[1.0, 3.0], [2.0] * 11]) == [1.5] + [2.0] * 8 + [2.333]  # bin 9: 2.0, 2.0 and 3.0


def joined_probe(refs: list[str], k: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """A system scored on the single sentences and on their joins of k, whose quality varies from
    one group of k sentences to the next and is shared by the group's sentences and their join:
    k=1 and k=K move together, as they do in a real test set (hard sentences are hard joined too)."""
    rng = random.Random(seed)
    shares = [rng.choice([0.05, 0.3, 0.6]) for _ in range(0, len(refs), k)]
    hyps = [h for g, share in enumerate(shares) for h in corrupt(refs[g * k:(g + 1) * k], share, seed + g)]
    joined_refs = [" ".join(refs[i:i + k]) for i in range(0, len(refs), k)]
    joined_hyps = [" ".join(hyps[i:i + k]) for i in range(0, len(hyps), k)]
    return sentence_stats(hyps, refs), sentence_stats(joined_hyps, joined_refs)


def independent_interval(short: list[list[int]], long: list[list[int]], resamples: int) -> tuple[float, float]:
    """The interval resampling the single sentences and the joined pairs each on their own."""
    rng = random.Random(1)
    ratios = sorted(100 * bleu_from_stats(rng.choices(long, k=len(long))) / bleu_from_stats(rng.choices(short, k=len(short)))
                    for _ in range(resamples))
    return ratios[int(0.025 * resamples)], ratios[resamples - 1 - int(0.025 * resamples)]


def test_the_ratio_interval_resamples_groups_and_is_narrower_than_independent_resampling(refs):
    short, long = joined_probe(refs, 6, seed=3)
    ratio = 100 * bleu_from_stats(long) / bleu_from_stats(short)
    low, high = ratio_interval([short], [long], 6, 400)
    independent = independent_interval(short, long, 400)
    assert low < ratio < high
    assert high - low < 0.7 * (independent[1] - independent[0])
    assert ratio_interval([short], [long], 6, 400) == (low, high)  # seeded
    assert ratio_interval([short], [long], 6, 0) is None and ratio_interval([[]], [long], 6, 400) is None
    with pytest.raises(ValueError):
        ratio_interval([short], [long[:-1]], 6, 400)


def test_the_ratio_interval_of_several_seeds_is_that_of_their_mean_ratio(refs):
    runs = [joined_probe(refs, 6, seed=s) for s in (3, 4, 5)]
    ratios = [100 * bleu_from_stats(long) / bleu_from_stats(short) for short, long in runs]
    low, high = ratio_interval([s for s, _ in runs], [j for _, j in runs], 6, 400)
    assert low < statistics.mean(ratios) < high
    one = ratio_interval([runs[0][0]], [runs[0][1]], 6, 400)
    assert high - low < one[1] - one[0]  # three seeds average out some of one seed's sampling


def test_a_bucket_edge_is_the_last_word_count_of_its_bucket():
    """eval.buckets [10, 15, 20]: 10 words fall in 1-10 and 11 in 11-15, 15 in 11-15 and 16 in
    16-20, 20 in 16-20 and 21 in 21+; by_length scores each bucket on its own sentences."""
    edges = [10, 15, 20]
    words = [1, 10, 11, 15, 16, 20, 21, 80]
    assert [bucket_label(n, edges) for n in words] == ["1-10", "1-10", "11-15", "11-15", "16-20", "16-20", "21+",
                                                     "21+"]
    refs = [" ".join(EN[(i + j) % 10] for j in range(8)) for i in range(8)]
    hyps = corrupt(refs, 0.5, seed=4)
    stats = sentence_stats(hyps, refs)
    sentences = [Sentence(s, nll=1.0 + i, tokens=9) for i, s in enumerate(stats)]
    buckets = by_length(sentences, words, edges, resamples=0)
    assert [(b["range"], b["n"]) for b in buckets] == [("1-10", 2), ("11-15", 2), ("16-20", 2), ("21+", 2)]
    for b, first in zip(buckets, (0, 2, 4, 6)):  # the sentences of words[first] and words[first + 1]
        assert b["bleu"] == round(bleu_from_stats(stats[first:first + 2]), 2)
        assert b["nll"] == round((2.0 + 2 * first + 1) / 18, 3)
    assert len({b["bleu"] for b in buckets}) > 1  # the buckets' scores differ: a misplaced sentence shows
    assert [b["n"] for b in by_length(sentences[:3], [11, 12, 13], edges, 0)] == [0, 3, 0, 0]  # empty ones listed


def test_bootstrap_intervals_are_the_central_95_percent_of_the_resampled_scores():
    """bootstrap_intervals: a statistic every resample agrees on has an interval of width 0 at
    it; otherwise the interval holds the score of the sentences themselves, is as wide as the
    normal approximation of a mean's 95% interval (2 * 1.96 standard errors), half as wide with
    four times the sentences, the same for the same seed; every score sees the same resamples."""
    rng = random.Random(0)
    nlls = [rng.gauss(2.0, 0.5) for _ in range(1600)]
    sentences = [Sentence([0] * 10, nll, 1) for nll in nlls]  # one token each: nll_per_token is their mean

    def width(n: int) -> float:
        (low, high), = bootstrap_intervals(sentences[:n], 1000, [nll_per_token])
        return high - low

    same = [Sentence([0] * 10, 3.0, 2)] * 50
    assert bootstrap_intervals(same, 200, [nll_per_token]) == [(1.5, 1.5)]
    (low, high), doubled = bootstrap_intervals(sentences[:400], 1000, [nll_per_token, lambda s: 2 * nll_per_token(s)])
    assert low < nll_per_token(sentences[:400]) < high
    assert doubled == pytest.approx((2 * low, 2 * high))  # the same resamples, scored twice
    sd = statistics.stdev(nlls[:400])
    assert width(400) == pytest.approx(2 * 1.96 * sd / 400 ** 0.5, rel=0.1)
    assert width(1600) / width(400) == pytest.approx(0.5, rel=0.15)
    assert bootstrap_intervals(sentences[:400], 1000, [nll_per_token]) == [(low, high)]  # seeded
    assert bootstrap_intervals(sentences[:400], 1000, [nll_per_token], seed=1) != [(low, high)]
    assert bootstrap_intervals(sentences, 0, [nll_per_token]) is None
    assert bootstrap_intervals([], 1000, [nll_per_token]) is None


def test_the_bootstrap_interval_leaves_as_many_resamples_above_it_as_below():
    """A score and its negative: the interval of one is the other's mirrored, if as many
    resampled scores are left out on each side."""
    rng = random.Random(0)
    sentences = [Sentence([0] * 10, rng.gauss(2.0, 0.5), 1) for _ in range(400)]
    (low, high), negated = bootstrap_intervals(sentences, 1000, [nll_per_token, lambda s: -nll_per_token(s)])
    assert negated == pytest.approx((-high, -low))
