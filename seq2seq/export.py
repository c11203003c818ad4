"""`seq2seq export`: a trained Transformer as a CTranslate2 model directory, described with
CTranslate2's own specification (ctranslate2.specs.TransformerSpec) and written by its
converter (ctranslate2.converters.Converter), which quantizes the weights.

The specification follows seq2seq/models/transformer.py, not CTranslate2's defaults:
- positions: the model's own table, given to the spec (sinusoids: sin and cos interleaved,
  position 0 first; CTranslate2's built-in table puts all sines before all cosines and starts at
  position 1);
- embeddings scaled by sqrt(d_model), one matrix for source, target and output layer (tied);
- LayerNorm before each sublayer and one closing each stack (pre-norm), or after each residual;
- each attention's projections as CTranslate2 fuses them: [W_q; W_k; W_v] in self-attention,
  W_q and [W_k; W_v] in cross-attention;
- the sentencepiece pieces as the vocabulary, the source ended by EOS (add_source_eos) and the
  target started from BOS, as collate() does.

The directory holds CTranslate2's files (model.bin, config.json, shared_vocabulary.json), the
run's spm.model and config.yaml (with eval.batch_tokens BATCH_TOKENS: CTranslate2 decodes as many
batches at once as it has threads, so it is fastest on many small batches), and export.json:
which run, checkpoint and step it holds, in which quantization. It is written beside its
destination and renamed into place whole.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from seq2seq.engines import import_ctranslate2
from seq2seq.errors import UserError
from seq2seq.evaluate import load_run
from seq2seq.models.base import count_parameters
from seq2seq.models.transformer import Transformer, TransformerConfig
from seq2seq.rundir import RunDir
from seq2seq.runfiles import EXPORT_MARK, ExportInfo
from seq2seq.tokenizer import BOS, EOS, UNK, Tokenizer

QUANTIZATIONS = ("int8", "int8_float32", "bfloat16", "float32")
TARGETS = ("ctranslate2",)
BATCH_TOKENS = 1000  # int8 greedy on 2 threads: 0.9 s at 1,000-token batches, 1.3 s at 8,000 (docs/results.md)


def export(run_dir: Path, out: Path, which: str = "best", to: str = "ctranslate2",
           quantization: str = "float32") -> ExportInfo:
    """Write run_dir's `which` checkpoint to `out` as a CTranslate2 model; returns export.json's record."""
    if to not in TARGETS:
        raise UserError(f"--to must be {' or '.join(TARGETS)} (the engines export writes for), got {to!r}")
    if quantization not in QUANTIZATIONS:
        raise UserError(f"--quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty directory: name a new one")
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise UserError(f"run dir not found: {run.path}")
    if run.read_export() is not None:
        raise UserError(f"{run.path} is an exported model already: export the run it came from")
    model_name = run.read_config().model.name
    if model_name != "transformer":
        raise UserError(f"CTranslate2 runs Transformers only: run {run.path} trains model {model_name}")
    ctranslate2 = import_ctranslate2()
    loaded = load_run(run_dir, which, "cpu")
    info = run.read_info()  # its summary, shown by compare
    record = ExportInfo(**EXPORT_MARK, engine="ctranslate2", quantization=quantization,
                        ctranslate2=ctranslate2.__version__, run=str(run.path.resolve()), checkpoint=loaded.which,
                        step=loaded.step, model=model_name, params=count_parameters(loaded.model), steps=info.steps,
                        train_seconds=info.train_seconds, best_val_bleu=info.best_val_bleu)
    spec = transformer_spec(loaded.model, loaded.cfg.model, loaded.tok)
    spec.register_file(str(run.spm), "spm.model")
    cfg = dataclasses.replace(loaded.cfg, eval=dataclasses.replace(loaded.cfg.eval, batch_tokens=BATCH_TOKENS,
                                                                      batch_examples=0))
    _write(out, lambda tmp: _convert(ctranslate2, spec, tmp, quantization), cfg, record)
    return record


def _convert(ctranslate2, spec, folder: Path, quantization: str) -> None:
    class Converter(ctranslate2.converters.Converter):
        def _load(self):
            return spec

    Converter().convert(str(folder), quantization=quantization, force=True)


def _write(out: Path, convert, cfg, record: ExportInfo) -> None:
    """Convert into a folder beside `out`, add this tool's files, then rename it into place: an
    interrupted export leaves no half-written model."""
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as e:
        raise UserError(f"cannot write in {parent}: {e.strerror}") from None
    try:
        convert(tmp)
        target = RunDir(tmp)
        target.write_config(cfg)
        target.write_export(record)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # as mkdir would make it, not mkdtemp's owner-only 0700
        tmp.rename(out)  # onto an empty directory or none
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def transformer_spec(model: Transformer, cfg: TransformerConfig, tok: Tokenizer):
    """CTranslate2's TransformerSpec of the model, its weights set (float32, unquantized)."""
    from ctranslate2.specs import TransformerSpec, common_spec

    spec = TransformerSpec.from_config((cfg.enc_layers, cfg.dec_layers), cfg.heads, pre_norm=cfg.pre_norm,
                                       activation=common_spec.Activation.RELU,
                                       alignment_heads=cfg.heads)  # the attention returned: the last layer's, mean over heads
    w = {name: t.detach().float().cpu().numpy() for name, t in model.state_dict().items()}
    for side, emb, layers, norm in ((spec.encoder, "src_emb", "encoder", "enc_norm"),
                                    (spec.decoder, "tgt_emb", "decoder", "dec_norm")):
        embeddings = side.embeddings[0] if isinstance(side.embeddings, list) else side.embeddings
        embeddings.weight = w[f"{emb}.weight"]
        side.scale_embeddings = True  # x * sqrt(d_model) (section 3.4)
        side.position_encodings.encodings = model.pe.numpy()  # (max_positions, d): the model's own table
        if cfg.pre_norm:
            _norm(side.layer_norm, w, norm)
        for i, layer in enumerate(side.layer):
            _layer(layer, w, f"{layers}.{i}", cross=side is spec.decoder)
    spec.decoder.projection.weight = w["out.weight"]  # (V, d): the embeddings again when tied
    pieces = tok.pieces(list(range(tok.vocab_size)))
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(pieces)
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = (pieces[i] for i in (UNK, BOS, EOS))
    spec.config.decoder_start_token = pieces[BOS]
    spec.config.add_source_eos = True  # collate() ends each source with EOS
    spec.config.layer_norm_epsilon = model.encoder[0].sub1.norm.eps
    return spec


def _layer(layer, w: dict, prefix: str, cross: bool) -> None:
    """One encoder or decoder layer: its sublayers in order, each with its LayerNorm."""
    subs = [(layer.self_attention, "self_attn")] + ([(layer.attention, "cross_attn")] if cross else [])
    for n, (attention, name) in enumerate(subs, 1):
        _norm(attention.layer_norm, w, f"{prefix}.sub{n}.norm")
        p = f"{prefix}.{name}"
        q, k, v, o = (f"{p}.W_{x}" for x in "qkvo")
        fused = [[q, k, v], [o]] if name == "self_attn" else [[q], [k, v], [o]]
        for linear, names in zip(attention.linear, fused):
            linear.weight = np.concatenate([w[f"{n}.weight"] for n in names])  # (len(names) * d, d)
            linear.bias = np.concatenate([w[f"{n}.bias"] for n in names])
    _norm(layer.ffn.layer_norm, w, f"{prefix}.sub{len(subs) + 1}.norm")
    for linear, index in ((layer.ffn.linear_0, 0), (layer.ffn.linear_1, 3)):  # feed_forward(): Linear, ReLU, -, Linear
        linear.weight, linear.bias = w[f"{prefix}.ff.{index}.weight"], w[f"{prefix}.ff.{index}.bias"]


def _norm(spec, w: dict, name: str) -> None:
    spec.gamma, spec.beta = w[f"{name}.weight"], w[f"{name}.bias"]


def export_line(out: Path, record: ExportInfo) -> str:
    return (f"{out}: run {record.run}, {record.checkpoint} checkpoint (step {record.step}), "
            f"CTranslate2 {record.ctranslate2}, {record.quantization}")
