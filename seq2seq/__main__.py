"""`seq2seq` and `python -m seq2seq`: the command line, in the process that will run it (see
seq2seq.allocator; tests call seq2seq.cli.main in theirs)."""

import sys

from seq2seq.allocator import restart_with_tcmalloc
from seq2seq.errors import UserError


def entry() -> None:
    try:
        restart_with_tcmalloc()  # before torch is imported: the restart costs no second import
    except UserError as e:  # SEQ2SEQ_MALLOC, said as the command line says any mistake
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    from seq2seq.cli import main
    main()


if __name__ == "__main__":
    entry()
