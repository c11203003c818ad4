"""`seq2seq` and `python -m seq2seq`: the command line, in the process that will run it (see
seq2seq.allocator; tests call seq2seq.cli.main in theirs)."""

from seq2seq.allocator import restart_with_tcmalloc


def entry() -> None:
    restart_with_tcmalloc()  # before torch is imported: the restart costs no second import
    from seq2seq.cli import main
    main()


if __name__ == "__main__":
    entry()
