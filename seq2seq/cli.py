"""The command line: parse, load the config, call one function per command (the commands are
seq2seq/commands/'s, grouped by what they do).

A mistake the user can make ends with one line on stderr and exit code 2 (UserError, or a
usage error from the parser); never a traceback.
"""

from __future__ import annotations

import sys

import typer

# Usage errors come from click, or from the copy of click that recent typer versions ship.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

from seq2seq.commands import app, training, decoding, reporting  # each adds its commands to app, in this order
from seq2seq.errors import UserError

COMMANDS = (training, decoding, reporting)  # what `seq2seq --help` lists, in its order

# How torch says an allocation failed: on CUDA, and on the CPU (c10's DefaultCPUAllocator).
OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")


def main() -> None:
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="seq2seq", standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):  # typer.Abort is a RuntimeError: caught before the branch below
        code = 130
    except ClickException as e:
        if e.format_message():  # none after the help that `seq2seq` alone prints
            print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
        if isinstance(e, RuntimeError) and not any(s in str(e) for s in OUT_OF_MEMORY):
            raise  # any other is a bug, shown whole
        said = (str(e)[:1000].strip().splitlines() or [type(e).__name__])[0][:160]  # a MemoryError may say nothing
        print(f"error: out of memory ({said}); use a smaller --beam, eval.batch_tokens or train.batch_tokens",
              file=sys.stderr)
        sys.exit(1)
    if isinstance(code, int) and code:  # 130: a Ctrl-C, ours or one typer caught itself
        if code == 130:
            print("error: interrupted", file=sys.stderr)
        sys.exit(code)


if __name__ == "__main__":
    main()
