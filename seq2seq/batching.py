"""Length-bucketed batches bounded by a token count, and their collation into tensors.

Each epoch the pairs are shuffled with a generator seeded by (seed, epoch), sorted by length
inside pools of a few hundred batches (so a batch holds pairs of similar length and little
padding), cut into batches of at most `batch_tokens` padded target tokens, and the batches
shuffled again. The same seed and epoch give the same batches, and every pair lands in
exactly one batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import torch

from seq2seq.tokenizer import BOS, EOS, PAD

POOL_BATCHES = 100  # sort within pools of about this many batches


@dataclass
class Batch:
    src: torch.Tensor  # (B, S) token ids, EOS-terminated, PAD after
    src_mask: torch.Tensor  # (B, S) True at real tokens
    tgt_in: torch.Tensor  # (B, T) BOS y_1 .. y_n, PAD after
    tgt_out: torch.Tensor  # (B, T) y_1 .. y_n EOS, PAD after
    n_tokens: int  # real target tokens (EOS included): what the loss is averaged over

    def to(self, device: torch.device) -> Batch:
        pin = device.type == "cuda"  # from page-locked memory the copy runs beside the queued step

        def move(t: torch.Tensor) -> torch.Tensor:
            return (t.pin_memory() if pin else t).to(device, non_blocking=True)

        return Batch(move(self.src), move(self.src_mask), move(self.tgt_in), move(self.tgt_out), self.n_tokens)


def token_batches(src_lens: list[int], tgt_lens: list[int], batch_tokens: int,
                  seed: int | None = None, epoch: int = 0) -> list[list[int]]:
    """Indices grouped into batches of at most batch_tokens padded tokens (the longer side
    counts; a single over-long pair still gets a batch of its own). seed=None: no shuffling,
    batches in length order (for decoding)."""
    n = len(src_lens)
    order = list(range(n))
    rng = random.Random(seed * 1_000_003 + epoch) if seed is not None else None
    if rng:
        rng.shuffle(order)
    length = [max(s, t) for s, t in zip(src_lens, tgt_lens)]
    mean = max(1, sum(length) // max(1, n))
    pool = max(1, POOL_BATCHES * batch_tokens // mean)
    batches: list[list[int]] = []
    for start in range(0, n, pool):
        chunk = sorted(order[start:start + pool], key=lambda i: length[i])
        batch: list[int] = []
        longest = 0
        for i in chunk:
            if batch and max(longest, length[i]) * (len(batch) + 1) > batch_tokens:
                batches.append(batch)
                batch, longest = [], 0
            batch.append(i)
            longest = max(longest, length[i])
        if batch:
            batches.append(batch)
    if rng:
        rng.shuffle(batches)
    return batches


def decoding_batches(lengths: list[int], batch_tokens: int, batch_examples: int = 0) -> list[list[int]]:
    """Batches for decoding, in length order: of at most batch_examples sentences where that is
    set, else of at most batch_tokens padded source tokens (token_batches)."""
    if not batch_examples:
        return token_batches(lengths, lengths, batch_tokens)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start:start + batch_examples] for start in range(0, len(order), batch_examples)]


def batched_length(n: int) -> int:
    """Positions a sequence of n token ids takes in a batch: collate adds EOS to the source and
    the target output, BOS to the target input."""
    return n + 1


def max_ids(max_positions: int) -> int:
    """The most token ids a sequence may have to fit in max_positions positions (batched_length)."""
    return max_positions - 1


def reference_batches(src: list[list[int]], tgt: list[list[int]], batch_tokens: int) -> Iterator[tuple[list[int], Batch]]:
    """Pairs of token ids in length-bucketed batches, unshuffled, each with its pairs' indices: the
    references scored by teacher forcing (the validation loss, forced decoding's NLL)."""
    lengths = [batched_length(len(s)) for s in src], [batched_length(len(t)) for t in tgt]
    for idx in token_batches(*lengths, batch_tokens):
        yield idx, collate([src[i] for i in idx], [tgt[i] for i in idx])


def collate(src: list[list[int]], tgt: list[list[int]]) -> Batch:
    """Token id lists (no specials) -> padded tensors with EOS/BOS added."""
    B = len(src)
    S = max(batched_length(len(s)) for s in src)
    T = max(batched_length(len(t)) for t in tgt)
    src_t = torch.full((B, S), PAD, dtype=torch.long)
    tgt_in = torch.full((B, T), PAD, dtype=torch.long)
    tgt_out = torch.full((B, T), PAD, dtype=torch.long)
    for b, (s, t) in enumerate(zip(src, tgt)):
        src_t[b, :len(s) + 1] = torch.tensor(s + [EOS])  # (S,)
        tgt_in[b, :len(t) + 1] = torch.tensor([BOS] + t)  # (T,)
        tgt_out[b, :len(t) + 1] = torch.tensor(t + [EOS])
    n_tokens = sum(batched_length(len(t)) for t in tgt)
    return Batch(src_t, src_t != PAD, tgt_in, tgt_out, n_tokens)
