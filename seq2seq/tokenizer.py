"""One joint source+target sentencepiece model, trained on the training split, kept in the run dir."""

from __future__ import annotations

import io
import re
from pathlib import Path

import sentencepiece as spm

from seq2seq.errors import UserError
from seq2seq.files import atomic_write_bytes

# The special ids, defined here and nowhere else.
PAD, UNK, BOS, EOS = 0, 1, 2, 3


class Tokenizer:
    def __init__(self, model_proto: bytes):
        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        if (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) != (PAD, UNK, BOS, EOS):
            raise UserError("the sentencepiece model's special ids differ from this tool's (pad 0, unk 1, bos 2, eos 3)")

    @staticmethod
    def train(sentences: list[str], vocab_size: int, model_type: str = "unigram") -> Tokenizer:
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
                model_type=model_type, character_coverage=1.0, hard_vocab_limit=False,
                pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, input_sentence_size=2_000_000,
                shuffle_input_sentence=True, num_threads=2, minloglevel=2)
        except RuntimeError as e:
            said = str(e).strip().splitlines()[-1]
            need = re.search(r"smaller than required_chars\. \d+ vs (\d+)", said)
            if need:  # sentencepiece's own advice names one of its options, which this tool does not have
                raise UserError(f"data.vocab_size={vocab_size} is too small: the training text needs {need[1]} "
                                "pieces (one per character, and the special ids): set data.vocab_size to at "
                                f"least {need[1]}") from None
            raise UserError(f"cannot train the sentencepiece model: {said}") from None
        return Tokenizer(model.getvalue())

    @staticmethod
    def load(path: Path) -> Tokenizer:
        try:
            return Tokenizer(Path(path).read_bytes())
        except FileNotFoundError:
            raise UserError(f"no tokenizer at {path}") from None
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror}") from None
        except RuntimeError:
            raise UserError(f"{path} is not a sentencepiece model") from None

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, self.proto)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts)

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self.sp.decode(ids) if ids else []  # sentencepiece decodes [] as one empty sentence

    def encode_table(self, table):
        """Tokenize an Arrow table of `src`/`tgt` strings into `src_ids`, `tgt_ids` and their lengths,
        with datasets.map: done once, batch by batch, and cached (the model bytes are the key)."""
        return table.map(_encode_batch, batched=True, fn_kwargs={"proto": self.proto},
                         remove_columns=["src", "tgt"])

    def within(self, table, max_tokens: int):
        """The rows of an Arrow table of `src`/`tgt` strings whose sides are at most max_tokens pieces."""
        return table.filter(_within_batch, batched=True, fn_kwargs={"proto": self.proto, "max_tokens": max_tokens})

    def pieces(self, ids: list[int]) -> list[str]:
        return self.sp.id_to_piece(ids)


_processors: dict[bytes, spm.SentencePieceProcessor] = {}


def _processor(proto: bytes) -> spm.SentencePieceProcessor:
    return _processors.get(proto) or _processors.setdefault(proto, spm.SentencePieceProcessor(model_proto=proto))


def _within_batch(batch: dict, proto: bytes, max_tokens: int) -> list[bool]:
    sp = _processor(proto)
    return [len(s) <= max_tokens and len(t) <= max_tokens for s, t in zip(sp.encode(batch["src"]), sp.encode(batch["tgt"]))]


def _encode_batch(batch: dict, proto: bytes) -> dict:
    sp = _processor(proto)
    src, tgt = sp.encode(batch["src"]), sp.encode(batch["tgt"])
    return {"src_ids": src, "tgt_ids": tgt, "src_len": [len(x) for x in src], "tgt_len": [len(x) for x in tgt]}
