"""The README's and docs/results.md's tables come from the repository: each is what `seq2seq
compare` prints from the run files in docs/runs/, and the README stays short."""

import pytest

from tests.conftest import ROOT

LADDER = ROOT / "docs" / "runs" / "ladder-laptop"
STUDY = ROOT / "docs" / "runs" / "study-k4"
FORMS = ["none", "mean", "dot", "general", "multihead", "additive"]


def table_rows(text: str, names: list[str]) -> list[str]:
    """The markdown rows whose first cell is one of the names."""
    return [line for line in text.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:] in names]


def printed(run_cli, *args) -> str:
    return run_cli("compare", *args, "--format", "markdown", in_process=True).out


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the tables name the runs by their paths from the repository's root


def test_the_readme_ladder_table_is_what_compare_prints_from_docs_runs(run_cli, at_root):
    runs = [(LADDER / form / seed).relative_to(ROOT) for form in FORMS
            for seed in sorted(p.name for p in (LADDER / form).iterdir())]
    rows = table_rows(printed(run_cli, *runs, "--baseline", runs[-1], "--columns",
                              "run,seeds,params,k=1,k=6,k=6 / k=1,NLL rise k=6"), FORMS)
    readme = table_rows((ROOT / "README.md").read_text(encoding="utf-8"), FORMS)
    assert len(rows) == 6 and rows == readme


def test_the_four_model_tables_are_what_compare_prints_from_docs_runs(run_cli, at_root):
    runs = [(STUDY / m).relative_to(ROOT) for m in ("rnn", "lstm", "bahdanau", "transformer")]
    names = [str(r) for r in runs]
    small = table_rows(printed(run_cli, *runs, "--baseline", runs[2], "--columns",
                               "run,params,k=1,k=6,k=6 / k=1,NLL rise k=6"), names)
    assert len(small) == 4 and small == table_rows((ROOT / "README.md").read_text(encoding="utf-8"), names)
    full = table_rows(printed(run_cli, *sorted(runs), "--baseline", runs[2]), names)
    results = table_rows((ROOT / "docs" / "results.md").read_text(encoding="utf-8"), names)
    assert len(full) == 4 and full == results[:4]


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 170
