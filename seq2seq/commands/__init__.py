"""The command line's commands, grouped by what they do: training (train, study, average),
decoding with a model (eval, score, translate, export, serve) and reporting on evaluated runs
(compare, report). Each module adds its commands to `app`; cli.py runs it. A command parses its
options and calls one function, importing what it needs (torch among it) only when it runs.
"""

from __future__ import annotations

import typer

from seq2seq.errors import UserError
from seq2seq.models import MODELS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help=f"Train and evaluate German->English translators: {', '.join(MODELS)}.")


def _version(shown: bool) -> None:
    if shown:
        from seq2seq import __version__

        print(f"seq2seq {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")) -> None:
    pass


def csv_ints(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} expects comma-separated integers, got {text!r}") from None
