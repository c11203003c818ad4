"""`seq2seq compare` and `report`: the evaluated runs side by side, as a table and figures, or
as one HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from seq2seq.commands import app


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="run dirs, each evaluated by seq2seq eval"),
    beam: int = typer.Option(1, help="compare the reports of this beam size (eval/test.beamN.json)"),
    format_: str = typer.Option("table", "--format", help="table | csv | json | markdown"),
    baseline: Optional[Path] = typer.Option(None, help="one of the runs: give the others the paired-bootstrap "
                                                       "p-value of their BLEU against it"),
    plot: Optional[Path] = typer.Option(None, help="draw BLEU by length and by concatenation to FILE.png or .svg"),
    plot_position: Optional[Path] = typer.Option(
        None, help="draw the reference NLL by position at the largest k to FILE.png or .svg"),
    plot_concat: Optional[Path] = typer.Option(
        None, help="draw BLEU and the reference NLL by k sentences joined to FILE.png or .svg"),
    curves: Optional[Path] = typer.Option(None, help="draw validation BLEU by step and by time to FILE.png or .svg"),
    examples: int = typer.Option(0, help="after the table, N sources of the largest k where the runs differ most"),
    checkpoint: str = typer.Option("best", help="best | last | avg: compare the evaluations of this checkpoint "
                                                "(eval/test.json, test.last.json, test.avg.json)"),
    columns: Optional[str] = typer.Option(None, help="the table's columns to show, by their headers, comma-separated "
                                                     "(e.g. run,params,k=1,k=6)"),
) -> None:
    """One table of runs (the runs of one setup trained with several seeds make one row): size, training, test BLEU, chrF and NLL, by length and by concatenation."""
    from seq2seq.compare import compare as print_comparison

    figures = {option: path for option, path in (("--plot", plot), ("--plot-position", plot_position),
                                                 ("--plot-concat", plot_concat), ("--curves", curves))
               if path is not None}
    print_comparison(runs, beam, format_, baseline, figures, examples,
                     [c.strip() for c in columns.split(",")] if columns else None, checkpoint)


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., help="run dirs, each evaluated by seq2seq eval"),
    output: Path = typer.Option(..., "--output", "-o", help="the HTML file to write"),
    beam: int = typer.Option(1, help="report the evaluations of this beam size (eval/test.beamN.json)"),
    sentence: Optional[str] = typer.Option(None, help="the German sentence whose attention is drawn"),
    baseline: Optional[Path] = typer.Option(None, help="one of the runs: give the others the paired-bootstrap "
                                                       "p-value of their BLEU against it"),
    checkpoint: str = typer.Option("best", help="best | last | avg: report the evaluations of this checkpoint"),
) -> None:
    """One self-contained HTML file of runs: table, figures, attention, long examples, signatures, setups."""
    from seq2seq.evaluate import run_attention
    from seq2seq.report import ATTENTION_SENTENCE, write_report
    from seq2seq.rundir import check_output

    check_output(output, "--output")
    write_report(runs, output, beam, sentence or ATTENTION_SENTENCE, baseline, run_attention, checkpoint)
    print(f"wrote {output}")
