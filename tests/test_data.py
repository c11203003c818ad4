import pytest

from seq2seq.batching import collate, decoding_batches, token_batches
from seq2seq.config import DataConfig
from seq2seq.data import augment_table, clean, clean_table, concatenate, load_split, load_table
from seq2seq.errors import UserError
from seq2seq.tokenizer import BOS, EOS, PAD, Tokenizer
from tests.conftest import MULTI30K, toy_pairs, write_jsonl


@pytest.mark.parametrize("shape", ["flat", "translation"])
def test_loads_both_column_shapes(tmp_path, shape):
    root = write_jsonl(tmp_path / shape, shape)
    cfg = DataConfig(dataset=str(root))
    for split, n in (("train", 300), ("validation", 40), ("test", 40)):
        pairs = load_split(cfg, split)
        assert len(pairs) == n
    assert pairs == toy_pairs(40, 3)


@pytest.mark.parametrize("shape", ["flat", "translation"])
def test_a_row_missing_a_side_is_dropped_as_empty(tmp_path, shape):
    import json

    rows = [{"de": "ein Hund", "en": "a dog"}] * 3 + [{"de": "eine Katze", "en": None}, {"de": "ein Ball"}]
    for split in ("train", "validation", "test"):
        lines = [json.dumps({"translation": r} if shape == "translation" else r) for r in rows]
        (tmp_path / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = DataConfig(dataset=str(tmp_path))
    assert clean(load_split(cfg, "test"), max_words=10).pairs == [("ein Hund", "a dog")] * 3
    kept, empty, long = clean_table(load_table(cfg, "train"), max_words=10)
    assert (len(kept), empty, long) == (3, 2, 0)


def test_loads_parallel_text_files(tmp_path):
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.de").write_text("eins zwei\ndrei\n", encoding="utf-8")
        (tmp_path / f"{split}.en").write_text("One two.\nThree.\n", encoding="utf-8")
    assert load_split(DataConfig(dataset=str(tmp_path)), "validation") == [("eins zwei", "One two."),
                                                                         ("drei", "Three.")]


def test_parallel_text_is_split_at_newlines_only(tmp_path):
    """A form feed, U+0085 or U+2028 inside a sentence is part of it (str.splitlines would break
    the line there and misalign every pair after it); lines are counted as `wc -l` counts them."""
    source = "ein\x0cHund\nzwei\u2028Katzen\r\ndrei\x85Mäuse\nvier\n"
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.de").write_text(source, encoding="utf-8", newline="")
        (tmp_path / f"{split}.en").write_text("a dog\ntwo cats\nthree mice\nfour\n", encoding="utf-8")
    assert load_split(DataConfig(dataset=str(tmp_path)), "test") == [
        ("ein\x0cHund", "a dog"), ("zwei\u2028Katzen", "two cats"), ("drei\x85Mäuse", "three mice"), ("vier", "four")]
    (tmp_path / "train.en").write_text("a dog\ntwo cats\nthree mice\n", encoding="utf-8")
    with pytest.raises(UserError, match=f"train.de has 4 lines but {tmp_path}/train.en has 3"):
        load_split(DataConfig(dataset=str(tmp_path)), "train")
    assert source.count("\n") == 4  # what wc -l says


def test_swapped_languages(toy_dataset):
    pairs = load_split(DataConfig(dataset=str(toy_dataset), src_lang="en", tgt_lang="de"), "test")
    assert pairs[0] == tuple(reversed(toy_pairs(40, 3)[0]))


@pytest.mark.skipif(not MULTI30K.exists(), reason="needs ../shared/data/multi30k")
def test_multi30k_local_copy_has_the_hub_splits():
    cfg = DataConfig(dataset=str(MULTI30K))
    assert [len(load_split(cfg, s)) for s in ("validation", "test")] == [1014, 1000]


def test_cleaning_strips_and_drops_and_counts():
    out = clean([("  a  b ", "c\t"), ("", "x"), ("y", "   "), ("w " * 5, "z")], max_words=4)
    assert out.pairs == [("a b", "c")]
    assert (out.dropped_empty, out.dropped_long) == (2, 1)


def test_concatenation_joins_consecutive_pairs():
    import datasets

    pairs = [("a", "A"), ("b", "B"), ("c", "C")]
    assert concatenate(pairs, 2) == [("a b", "A B"), ("c", "C")]
    table = datasets.Dataset.from_dict({"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]})
    augmented = augment_table(table, 3)
    assert list(zip(augmented["src"], augmented["tgt"])) == pairs + concatenate(pairs, 2) + concatenate(pairs, 3)


def test_the_concatenation_probes_last_short_group_is_kept_as_one_joined_pair():
    """k consecutive pairs per join, from the first: where k does not divide the number of
    pairs, the last join holds the pairs left over, fewer than k, and is one joined pair like
    the others; no pair is dropped or repeated."""
    pairs = [(f"s{i}", f"T{i}.") for i in range(7)]
    assert concatenate(pairs, 3) == [("s0 s1 s2", "T0. T1. T2."), ("s3 s4 s5", "T3. T4. T5."), ("s6", "T6.")]
    assert concatenate(pairs, 5) == [("s0 s1 s2 s3 s4", "T0. T1. T2. T3. T4."), ("s5 s6", "T5. T6.")]
    assert concatenate(pairs, 7) == concatenate(pairs, 9) == [(" ".join(s for s, _ in pairs),
                                                               " ".join(t for _, t in pairs))]
    for k in range(1, 9):
        joined = concatenate(pairs, k)
        assert len(joined) == -(-7 // k)  # ceil(7 / k)
        assert " ".join(s for s, _ in joined).split() == [s for s, _ in pairs]


def test_cleaning_a_table_matches_cleaning_a_list():
    import datasets

    pairs = [("  a  b ", "c\t"), ("", "x"), ("y", "   "), ("w " * 5, "z"), ("d", "e")]
    table = datasets.Dataset.from_dict({"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]})
    kept, empty, long = clean_table(table, max_words=4)
    expected = clean(pairs, max_words=4)
    assert list(zip(kept["src"], kept["tgt"])) == expected.pairs
    assert (empty, long) == (expected.dropped_empty, expected.dropped_long)


def test_tokenizer_round_trip_and_special_ids(tmp_path):
    sentences = [s for p in toy_pairs(200) for s in p] + ["Ein Mann fährt Fahrrad.", "Über die Straße."]
    tok = Tokenizer.train(sentences, vocab_size=60)
    tok.save(tmp_path / "spm.model")
    again = Tokenizer.load(tmp_path / "spm.model")
    ids = again.encode(sentences)
    assert again.decode(ids) == sentences
    assert (again.sp.pad_id(), again.sp.unk_id(), again.sp.bos_id(), again.sp.eos_id()) == (PAD, 1, BOS, EOS)
    assert all(t > EOS for row in ids for t in row)


def test_batches_cover_every_pair_once_within_the_token_bound():
    import random

    rng = random.Random(0)
    src = [rng.randint(1, 40) for _ in range(1000)]
    tgt = [rng.randint(1, 40) for _ in range(1000)]
    for epoch in range(3):
        batches = token_batches(src, tgt, 200, seed=7, epoch=epoch)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(1000))
        assert all(max(max(src[i], tgt[i]) for i in b) * len(b) <= 200 for b in batches)
    assert token_batches(src, tgt, 200, seed=7, epoch=1) == token_batches(src, tgt, 200, seed=7, epoch=1)
    assert token_batches(src, tgt, 200, seed=7, epoch=1) != token_batches(src, tgt, 200, seed=7, epoch=2)


def test_a_pair_longer_than_the_bound_still_gets_a_batch():
    assert token_batches([500, 3], [2, 3], 100) == [[1], [0]]


def test_decoding_batches_of_sentences_are_in_length_order_and_cover_each_once():
    lengths = [7, 3, 9, 3, 5]
    assert decoding_batches(lengths, 1000, 2) == [[1, 3], [4, 0], [2]]
    assert decoding_batches(lengths, 10) == token_batches(lengths, lengths, 10)  # no count: by tokens


def test_collate_adds_specials_and_pads():
    b = collate([[5, 6], [7]], [[8], [9, 10, 11]])
    assert b.src.tolist() == [[5, 6, EOS], [7, EOS, PAD]]
    assert b.tgt_in.tolist() == [[BOS, 8, PAD, PAD], [BOS, 9, 10, 11]]
    assert b.tgt_out.tolist() == [[8, EOS, PAD, PAD], [9, 10, 11, EOS]]
    assert b.n_tokens == 6 and b.src_mask.tolist() == [[True] * 3, [True, True, False]]


def test_missing_dataset_directory_is_a_user_error():
    with pytest.raises(UserError, match="not found"):
        load_split(DataConfig(dataset="/nonexistent/data"), "train")


def test_bleu_from_summed_sentence_statistics_is_sacrebleus_corpus_bleu():
    from sacrebleu.metrics import BLEU

    from seq2seq.metrics import bleu_from_stats, sentence_stats

    hyps = ["A dog runs in the snow.", "Two men sit on a bench .", "x", "The cat sat on the mat."]
    refs = ["A dog is running through the snow.", "Two men are sitting on a bench.", "A woman.", "The cat sat."]
    assert abs(bleu_from_stats(sentence_stats(hyps, refs)) - BLEU().corpus_score(hyps, [refs]).score) < 1e-9
