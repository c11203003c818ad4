"""`compare --examples N`: the sources where the runs' outputs differ most, each with its
reference and every run's output, read from the hypotheses eval wrote."""

from __future__ import annotations

from pathlib import Path

from seq2seq.data import concatenate, split_pairs
from seq2seq.errors import UserError
from seq2seq.metrics import sentence_bleu
from seq2seq.rundir import RunDir
from seq2seq.runfiles import hypotheses_path, read_hypotheses
from seq2seq.significance import same_test_sentences
from seq2seq.tables import largest_common_k, run_labels

def most_different(rows: list[dict], n: int, groups: list[dict | None]) -> str:
    """The n sources of the largest k all runs evaluated where the runs' sentence BLEU differs
    most, each with its reference and every run's output (groups: the rows' sentence_groups)."""
    same_test_sentences(rows, groups, "--examples")
    k = largest_common_k(rows)
    pairs = concatenate(split_pairs(RunDir(rows[0]["run"]).read_config().data, "test"), k)
    refs = [t for _, t in pairs]
    outputs = [_hypotheses(row, k, len(pairs)) for row in rows]
    bleu = [sentence_bleu(hyps, refs) for hyps in outputs]  # [run][sentence]
    spread = [max(scores) - min(scores) for scores in zip(*bleu)]
    chosen = sorted(range(len(pairs)), key=lambda i: -spread[i])[:n]
    labels = run_labels(rows)
    width = max(len(label) for label in labels + ["reference"])
    blocks = []
    for rank, i in enumerate(chosen, 1):
        lines = [f"example {rank}: joined pair {i + 1} of {len(pairs)} (k={k}); sentence BLEU differs by "
                 f"{spread[i]:.1f}",
                 f"  {'source':<{width}}        {pairs[i][0]}", f"  {'reference':<{width}}        {refs[i]}"]
        lines += [f"  {label:<{width}} {bleu[r][i]:5.1f}  {outputs[r][i]}" for r, label in enumerate(labels)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _hypotheses(row: dict, k: int, n: int) -> list[str]:
    report, beam = Path(row["report"]), row["beam"]
    lines, path = read_hypotheses(report, k), hypotheses_path(report, k)
    if lines is None or len(lines) != n:
        again = f" --concat {k}" + (f" --beam {beam}" if beam > 1 else "") + \
            (f" --checkpoint {row['checkpoint']}" if row["checkpoint"] != "best" and row["engine"] == "pytorch" else "")
        raise UserError(f"{path} {'is missing' if lines is None else f'has {len(lines)} lines, not {n}'}: "
                        f"run `seq2seq eval {row['run']}{again}` again")
    return lines


