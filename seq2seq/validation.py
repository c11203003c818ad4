"""Validation during training: the loss per target token (no label smoothing) over the
validation pairs that fit the model's positions, and greedy BLEU over all of them."""

from __future__ import annotations

import contextlib
import dataclasses

import torch

from seq2seq.batching import reference_batches
from seq2seq.config import EvalConfig
from seq2seq.corpus import Corpus
from seq2seq.metrics import corpus_scores
from seq2seq.models.base import Seq2Seq
from seq2seq.search import translate
from seq2seq.tokenizer import Tokenizer


@torch.no_grad()
def validate(model: Seq2Seq, tok: Tokenizer, corpus: Corpus, valid_ids: tuple[list[list[int]], list[list[int]]],
             settings: EvalConfig, device: torch.device,
             autocast: contextlib.AbstractContextManager) -> tuple[float, float]:
    """(validation loss, validation BLEU): the loss over `valid_ids` (corpus.valid_ids), under the
    `autocast` training uses; BLEU of greedy search over every validation source (cut
    to fit), in settings.precision. The model is left in training mode."""
    model.eval()
    src_ids, tgt_ids = valid_ids
    nll, n = 0.0, 0
    for _, b in reference_batches(src_ids, tgt_ids, settings.batch_tokens):
        b = b.to(device)
        with autocast:
            nll += model(b.src, b.src_mask, b.tgt_in, b.tgt_out).item()
        n += b.n_tokens
    hyps = translate(model, tok, corpus.valid_src, device, dataclasses.replace(settings, beam=1))
    model.train()
    return nll / max(n, 1), corpus_scores(hyps, corpus.valid_tgt)["bleu"]
