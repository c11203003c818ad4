"""seq2seq export: a tiny trained Transformer written for CTranslate2 in each quantization, and
used like a run (translate, eval, compare), its translations checked against PyTorch's."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from seq2seq.config import load_config
from seq2seq.data import split_pairs
from seq2seq.evaluate import load_run
from seq2seq.export import QUANTIZATIONS, _convert, transformer_spec
from seq2seq.models.build import build_model
from seq2seq.tokenizer import Tokenizer
from tests.conftest import tiny, toy_pairs, write_jsonl

ctranslate2 = pytest.importorskip("ctranslate2")  # .[test] installs it


@pytest.fixture(scope="module")
def trained(tmp_path_factory, run_cli) -> Path:
    """A tiny Transformer trained on the toy data until it translates some of it (validation
    BLEU about 20 after 120 updates), so that its searches end with EOS and differ in length."""
    root = tmp_path_factory.mktemp("export")
    data = write_jsonl(root / "toy")
    run_cli("train", "--config", tiny("transformer"), "--model", "transformer", "--dataset", data,
            "--max-steps", 120, "--epochs", 100, "--run-dir", root / "run", "--set", "train.eval_every=120",
            "--set", "train.schedule=constant")
    return root / "run"


@pytest.fixture(scope="module")
def exported(trained, run_cli) -> dict[str, Path]:
    """The run exported in each quantization."""
    out = {}
    for quantization in QUANTIZATIONS:
        out[quantization] = trained.parent / f"ct2-{quantization}"
        said = run_cli("export", trained, "--to", "ctranslate2", "--quantization", quantization, "-o",
                       out[quantization], in_process=True).out
        assert said.startswith(f"{out[quantization]}: run ") and said.rstrip().endswith(quantization)
    return out


@pytest.fixture(scope="module")
def sources(trained) -> list[str]:
    """A few dozen sentences: the toy test and validation sources (80)."""
    data = load_run(trained).cfg.data
    return [s for split in ("test", "validation") for s, _ in split_pairs(data, split)]


def test_export_writes_a_ctranslate2_model_with_the_runs_tokenizer_and_what_it_holds(trained, exported):
    model = exported["int8"]
    assert {"model.bin", "config.json", "shared_vocabulary.json", "spm.model", "config.yaml",
            "export.json"} <= {p.name for p in model.iterdir()}
    assert (model / "spm.model").read_bytes() == (trained / "spm.model").read_bytes()
    record = json.loads((model / "export.json").read_text())
    step = torch.load(trained / "checkpoints" / "best.pt", weights_only=True)["progress"]["step"]
    assert record | {"ctranslate2": None} == record | {
        "run": str(trained.resolve()), "checkpoint": "best", "step": step, "quantization": "int8",
        "engine": "ctranslate2", "model": "transformer", "ctranslate2": None}
    config = json.loads((model / "config.json").read_text())
    assert config["add_source_eos"] and (config["bos_token"], config["eos_token"]) == ("<s>", "</s>")
    assert not [p for p in trained.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind


def decode_all(run: Path, sources: list[str], beam: int) -> list[str]:
    loaded = load_run(run, device="cpu")
    return loaded.engine.translate(sources, dataclasses.replace(loaded.cfg.eval, beam=beam))


@pytest.mark.parametrize("beam", [1, 5])
def test_float32_translates_exactly_as_pytorch_does(trained, exported, sources, beam):
    assert decode_all(exported["float32"], sources, beam) == decode_all(trained, sources, beam)


def test_each_quantization_agrees_with_pytorch_mostly(trained, exported, sources):
    """int8 and bfloat16 round the weights: most translations stay the same. pytest -s shows the
    rates; on this model greedy kept 100% in each, beam 5 96-98% (docs/results.md)."""
    reference = {beam: decode_all(trained, sources, beam) for beam in (1, 5)}
    for quantization, model in exported.items():
        for beam in (1, 5):
            same = sum(a == b for a, b in zip(decode_all(model, sources, beam), reference[beam])) / len(sources)
            print(f"{quantization} beam {beam}: {same:.1%} of {len(sources)} translations as PyTorch fp32's")
            assert same == 1.0 if quantization == "float32" else same >= 0.8


def test_nbest_and_reference_nll_agree_with_pytorch(trained, exported, sources):
    """The best of each n-best list is PyTorch's, and so is its score; the references' NLL is
    PyTorch's to float rounding."""
    run, model = load_run(trained, device="cpu"), load_run(exported["float32"], device="cpu")
    settings = dataclasses.replace(run.cfg.eval, beam=4)
    for ours, theirs in zip(run.engine.nbest(sources, settings, 4), model.engine.nbest(sources, settings, 4)):
        assert len(theirs) == 4 and theirs[0][1] == ours[0][1] and theirs[0][0] == pytest.approx(ours[0][0], abs=1e-4)
        assert [s for s, _ in theirs] == sorted((s for s, _ in theirs), reverse=True)
    pairs = split_pairs(run.cfg.data, "test")
    for ours, theirs in zip(run.engine.reference_nll(pairs, 500), model.engine.reference_nll(pairs, 500)):
        assert theirs == pytest.approx(ours, abs=1e-4)


@pytest.mark.parametrize("beam", [1, 3])
def test_best_gives_pytorchs_tokens_their_log_p_and_the_attention(trained, exported, sources, beam):
    """What serve shows of a sentence: the float32 export's best hypothesis is PyTorch's, with the
    same log p per token and (the export's alignment: the last layer, mean over heads) attention."""
    run, model = load_run(trained, device="cpu"), load_run(exported["float32"], device="cpu")
    settings = dataclasses.replace(run.cfg.eval, beam=beam)
    for ours, theirs in zip(run.engine.best(sources, settings, True), model.engine.best(sources, settings, True)):
        assert theirs.tokens == ours.tokens and theirs.score == pytest.approx(ours.score, abs=1e-4)
        assert theirs.logprobs == pytest.approx(ours.logprobs, abs=1e-4)
        torch.testing.assert_close(theirs.attention, ours.attention.float(), atol=1e-4, rtol=0)


def test_serve_takes_an_exported_model_beside_its_run(trained, exported):
    pytest.importorskip("starlette")
    from tests.test_serve import Server, translated

    lines = ["eins zwei drei", "vier fünf sechs sieben"]
    server = Server(trained, exported["int8"])
    try:
        status, runs = server.get("/runs")
        assert status == 200 and [r["engine"] for r in runs["runs"]] == ["pytorch", "ctranslate2"]
        status, body = server.post("/translate", {"text": "\n".join(lines), "attention": True})
        assert status == 200
        answer = body["runs"][1]
        assert answer["translation"].split("\n") == translated(exported["int8"], lines)
        for sentence in answer["sentences"]:
            weights = torch.tensor(sentence["attention"])  # (T_out + 1, S + 1)
            assert weights.shape == (len(sentence["tokens"]), len(sentence["source_tokens"]))
            assert len(sentence["logprobs"]) == len(sentence["tokens"]) and max(sentence["logprobs"]) <= 0
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("pre_norm,tie", [(True, True), (False, False)])
def test_the_spec_scores_as_the_model_does(tmp_path, pre_norm, tie):
    """Pre- and post-norm, tied and untied embeddings: CTranslate2's forced decoding of the
    untrained model's weights gives PyTorch's log-probabilities."""
    tok = Tokenizer.train([s for p in toy_pairs(300) for s in p], vocab_size=60)
    cfg = load_config(tiny("transformer"), {"model.pre_norm": pre_norm, "model.tie_embeddings": tie,
                                            "model.dropout": 0.0})
    torch.manual_seed(0)
    model = build_model(cfg.model, tok.vocab_size).eval()
    _convert(ctranslate2, transformer_spec(model, cfg.model, tok), tmp_path / "m", "float32")
    pairs = toy_pairs(20, seed=9)
    src, tgt = tok.encode([s for s, _ in pairs]), tok.encode([t for _, t in pairs])
    scored = ctranslate2.Translator(str(tmp_path / "m")).score_batch([tok.pieces(s) for s in src],
                                                                     [tok.pieces(t) for t in tgt])
    from seq2seq.likelihood import reference_nll

    for ours, theirs in zip(reference_nll(model, tok, pairs, torch.device("cpu")), scored):
        assert [-p for p in theirs.log_probs] == pytest.approx(ours, abs=1e-4)


def test_translate_takes_an_exported_model_as_it_takes_a_run(trained, exported, run_cli):
    lines = "zwei drei\n\nacht eins vier\n"  # an empty line stays empty
    for args in ([], ["--beam", "3"]):
        ours = run_cli("translate", trained, *args, stdin=lines, in_process=True).out
        theirs = run_cli("translate", exported["float32"], *args, "--threads", 1, "--batch-examples", 1,
                         stdin=lines, in_process=True).out
        assert theirs == ours and theirs.split("\n")[1] == ""
    ours, theirs = (run_cli("translate", model, "--beam", "3", "--nbest", "2", stdin=lines, in_process=True).out
                    for model in (trained, exported["float32"]))
    best = [[line.split("\t") for line in out.splitlines()][::2] for out in (ours, theirs)]
    assert [(i, text) for i, _, text in best[0]] == [(i, text) for i, _, text in best[1]]
    assert [i for i, _, _ in best[1]] == ["0", "2"]


def test_eval_of_an_export_names_its_engine_and_compare_shows_it_beside_its_run(trained, exported, run_cli):
    model = exported["int8"]
    run_cli("eval", trained, "--concat", "1,2", "--bootstrap", 20, in_process=True)
    printed = run_cli("eval", model, "--concat", "1,2", "--bootstrap", 20, "--threads", 1, in_process=True).out
    assert "ctranslate2 int8" in printed.splitlines()[0]
    report = json.loads((model / "eval" / "test.json").read_text())
    assert (report["engine"], report["quantization"], report["threads"]) == ("ctranslate2", "int8", 1)
    assert report["exported_from"]["run"] == str(trained.resolve())
    assert [c["k"] for c in report["concat"]] == [1, 2] and sum(b["n"] for b in report["buckets"]) == report["n"]
    table = run_cli("compare", trained, model, "--baseline", trained, "--format", "markdown", in_process=True).out
    header, _, first, second = table.splitlines()
    assert header.startswith("| run | model | engine | params |")
    assert first.startswith(f"| {trained} | transformer | pytorch | ") and \
        second.startswith(f"| {model} | transformer | ctranslate2 int8 | ")
    other_seed = shutil.copytree(trained, trained.parent / "seed-1")  # the run as if trained with another seed
    config = yaml.safe_load((other_seed / "config.yaml").read_text())
    config["train"]["seed"] += 1
    (other_seed / "config.yaml").write_text(yaml.safe_dump(config))
    rows = run_cli("compare", other_seed, model, "--format", "json", in_process=True).out
    assert [(row["engine"], row["seeds"]) for row in json.loads(rows)] == [("pytorch", 1), ("ctranslate2", 1)]
    run_cli("report", trained, model, "-o", trained.parent / "report.html", in_process=True)
    assert "ctranslate2 int8" in (trained.parent / "report.html").read_text(encoding="utf-8")


def test_an_exported_model_holds_one_checkpoint_and_no_attention(trained, exported, run_cli):
    said = run_cli("eval", exported["float32"], "--checkpoint", "last", expect=2, in_process=True).err
    assert said.startswith("error: ") and "drop --checkpoint last" in said and len(said.splitlines()) == 1
    said = run_cli("translate", exported["float32"], "--attention-plot", trained.parent / "a.png",
                   stdin="zwei drei\n", expect=2, in_process=True).err
    assert "gives no attention" in said and len(said.splitlines()) == 1


def test_export_of_an_rnn_run_is_one_line(tmp_path, run_cli):
    data = write_jsonl(tmp_path / "toy")
    run_cli("train", "--config", tiny("rnn"), "--model", "rnn", "--dataset", data, "--max-steps", 2,
            "--run-dir", tmp_path / "rnn")
    said = run_cli("export", tmp_path / "rnn", "--to", "ctranslate2", "-o", tmp_path / "out", expect=2)
    assert said.err == f"error: CTranslate2 runs Transformers only: run {tmp_path / 'rnn'} trains model rnn\n"
    assert not (tmp_path / "out").exists()


def test_an_interrupted_export_leaves_nothing(trained, tmp_path, monkeypatch):
    from seq2seq import export

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_convert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export(trained, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
