"""What training reads: the cleaned training pairs tokenized (concatenations added), in an
Arrow table, and the validation pairs; the tokenizer is trained here for a new run."""

from __future__ import annotations

from dataclasses import dataclass

from seq2seq.batching import Batch, batched_length, collate, max_ids
from seq2seq.config import Config
from seq2seq.data import augment_table, clean, clean_table, fingerprint, load_split, load_table
from seq2seq.distributed import World
from seq2seq.errors import UserError
from seq2seq.tokenizer import Tokenizer

TOKENIZER_SAMPLE = 1_000_000  # pairs the sentencepiece model is trained on, at most


@dataclass
class Corpus:
    """The tokenized training pairs (an Arrow table: src_ids, tgt_ids, src_len, tgt_len), the raw
    validation pairs, and the fingerprint of both."""

    table: object
    valid_src: list[str]
    valid_tgt: list[str]
    fingerprint: str = ""  # of the training and validation pairs (data.fingerprint)

    def lengths(self) -> tuple[list[int], list[int]]:
        """Positions each training source and target takes in a batch."""
        return [batched_length(n) for n in self.table["src_len"]], [batched_length(n) for n in self.table["tgt_len"]]

    def batch(self, idx: list[int]) -> Batch:
        rows = self.table[idx]
        return collate(rows["src_ids"], rows["tgt_ids"])

    def valid_ids(self, tok: Tokenizer, max_positions: int | None) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of the validation pairs that fit the model's positions (those the validation
        loss is taken over, as training is): sources, targets."""
        pairs = [(src, tgt) for src, tgt in zip(tok.encode(self.valid_src), tok.encode(self.valid_tgt))
                 if fits(max_positions, len(src), len(tgt))]
        return [src for src, _ in pairs], [tgt for _, tgt in pairs]


def prepare(cfg: Config, log, tok: Tokenizer | None = None, world: World = World()) -> tuple[Corpus, Tokenizer]:
    """Load and clean the data; train the tokenizer (on rank 0, shared with the others) unless
    one is given (resume)."""
    train = load_table(cfg.data, "train")
    if cfg.data.max_train_pairs:
        train = train.select(range(min(cfg.data.max_train_pairs, len(train))))
    train, dropped_empty, dropped_long = clean_table(train, cfg.data.max_words)
    log(f"train: {len(train)} pairs kept, {dropped_empty} dropped as empty, "
        f"{dropped_long} longer than {cfg.data.max_words} words")
    if not len(train):
        raise UserError(f"dataset {cfg.data.dataset} has no training pairs left after cleaning")
    valid = clean(load_split(cfg.data, "validation"), cfg.data.max_words).pairs
    if not valid:
        raise UserError(f"dataset {cfg.data.dataset} has no validation pairs left after cleaning")
    if tok is None:
        sample = train.select(range(min(len(train), TOKENIZER_SAMPLE)))
        tok = Tokenizer(world.run_on_main(lambda: Tokenizer.train(
            [*sample["src"], *sample["tgt"]], cfg.data.vocab_size, cfg.data.spm_model_type).proto))
        if tok.vocab_size < cfg.data.vocab_size:
            log(f"vocabulary: {tok.vocab_size} pieces, fewer than data.vocab_size={cfg.data.vocab_size}: "
                "the training text holds no more")
    within = tok.within(train, cfg.data.max_tokens)  # one 1 MB word is a few words but a batch no memory holds
    if len(within) < len(train):
        log(f"train: {len(train) - len(within)} pairs dropped as longer than data.max_tokens={cfg.data.max_tokens} "
            "tokens")
        train = within
    encoded = tok.encode_table(augment_table(train, cfg.data.concat_k))
    limit = cfg.model.max_positions
    kept = encoded.filter(lambda src, tgt: [fits(limit, a, b) for a, b in zip(src, tgt)], batched=True,
                          input_columns=["src_len", "tgt_len"])
    if len(kept) < len(encoded):
        log(f"train: {len(encoded) - len(kept)} pairs dropped as longer than {max_ids(limit)} tokens")
    if not len(kept):
        raise UserError(f"no training pair fits in model.max_positions={limit} tokens")
    log(f"train: {len(kept)} pairs (concatenations up to k={cfg.data.concat_k}), "
        f"validation: {len(valid)} pairs, vocabulary: {tok.vocab_size}")
    return Corpus(kept, [s for s, _ in valid], [t for _, t in valid], fingerprint(train, valid)), tok


def fits(max_positions: int | None, src_len: int, tgt_len: int) -> bool:
    """Whether a pair of token counts fits a model's positions (None: any does), EOS or BOS
    added to each side."""
    return max_positions is None or batched_length(max(src_len, tgt_len)) <= max_positions
