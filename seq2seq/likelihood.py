"""Forced decoding: the model's negative log-likelihood of given references, with no search.

One teacher-forced pass (model.forward) per batch, with the references tokenized and ended by
EOS as in training and no label smoothing: a reference's summed NLL is what train.token_loss
adds up for it. Unlike BLEU it does not depend on what a search happens to find.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seq2seq.batching import collate, token_batches
from seq2seq.data import Pair
from seq2seq.models.base import Seq2Seq
from seq2seq.search import source_ids
from seq2seq.tokenizer import Tokenizer


@torch.no_grad()
def reference_nll(model: Seq2Seq, tok: Tokenizer, pairs: list[Pair], device: torch.device,
                  batch_tokens: int = 8000) -> list[list[float]]:
    """The NLL (nats) of each token of each pair's reference, EOS last, in the pairs' order.
    A source or reference longer than the model's positions is cut as translate cuts sources."""
    was_training = model.training
    model.eval()
    src = source_ids(model, tok, [s for s, _ in pairs])
    tgt = source_ids(model, tok, [t for _, t in pairs])
    out: list[list[float]] = [[] for _ in pairs]
    for idx in token_batches([len(s) + 1 for s in src], [len(t) + 1 for t in tgt], batch_tokens):
        b = collate([src[i] for i in idx], [tgt[i] for i in idx]).to(device)
        logits = model(b.src, b.src_mask, b.tgt_in)  # (B, T, V)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), b.tgt_out.flatten(), reduction="none")  # (B*T,)
        nll = nll.view(b.tgt_out.shape)  # (B, T)
        for i, row in zip(idx, nll.tolist()):
            out[i] = row[:len(tgt[i]) + 1]  # the reference's tokens and EOS, not the padding
    model.train(was_training)
    return out
