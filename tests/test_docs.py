"""The README's figures come from the repository: its study table is what `seq2seq compare`
prints from the run files in docs/runs/."""

from tests.conftest import ROOT

STUDY = ROOT / "docs" / "runs" / "study-k4"


def test_the_readme_study_table_is_what_compare_prints_from_docs_runs(run_cli, monkeypatch):
    monkeypatch.chdir(ROOT)  # the table names the runs by their paths from the repository's root
    runs = sorted(p.relative_to(ROOT) for p in STUDY.iterdir())
    printed = run_cli("compare", *runs, "--baseline", STUDY.relative_to(ROOT) / "bahdanau", "--format", "markdown",
                      in_process=True).out
    rows = [line for line in printed.splitlines() if line.startswith("| docs/runs/")]
    readme = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
              if line.startswith("| docs/runs/")]
    assert len(rows) == 4 and rows == readme
