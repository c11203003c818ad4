"""Forced decoding: the model's negative log-likelihood of given references, with no search.

Forced decoding is one teacher-forced pass (model.forward) per batch, with the references
tokenized and ended by EOS as in training and no label smoothing: a reference's summed NLL is
what the training loss (seq2seq.loss) adds up for it. Unlike BLEU it does not depend on what a
search happens to find.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seq2seq.batching import batched_length, reference_batches
from seq2seq.data import Pair
from seq2seq.models.base import Seq2Seq
from seq2seq.search import fitted_ids
from seq2seq.tokenizer import Tokenizer


@torch.no_grad()
def reference_nll(model: Seq2Seq, tok: Tokenizer, pairs: list[Pair], device: torch.device,
                  batch_tokens: int = 8000) -> list[list[float]]:
    """The NLL (nats) of each token of each pair's reference, EOS last, in the pairs' order.
    A source or reference longer than the model's positions is cut as translate cuts sources."""
    was_training = model.training
    model.eval()
    src = fitted_ids(model.max_positions, tok, [s for s, _ in pairs])
    tgt = fitted_ids(model.max_positions, tok, [t for _, t in pairs])
    out: list[list[float]] = [[] for _ in pairs]
    for idx, b in reference_batches(src, tgt, batch_tokens):
        b = b.to(device)
        logits = model(b.src, b.src_mask, b.tgt_in)  # (B, T, V)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), b.tgt_out.flatten(), reduction="none")  # (B*T,)
        nll = nll.view(b.tgt_out.shape)  # (B, T)
        for i, row in zip(idx, nll.tolist()):
            out[i] = row[:batched_length(len(tgt[i]))]  # the reference's tokens and EOS, not the padding
    model.train(was_training)
    return out
