"""Reports for people: the eval table, and the comparison of runs."""

from __future__ import annotations


def _ci(row: dict) -> str:
    return f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]" if row.get("ci_low") is not None else ""


def eval_table(report: dict) -> str:
    search = "greedy" if report["beam"] == 1 else f"beam {report['beam']}"
    lines = [f"{report['run']}  {report['model']}  {report['split']} ({report['n']} sentences)  "
             f"{report['checkpoint']} checkpoint, step {report['step']}  {search}",
             f"BLEU {report['bleu']:.2f} {_ci(report)}  chrF {report['chrf']:.2f}",
             f"  {report['signature']['bleu']}",
             f"  {report['signature']['chrf']}",
             "",
             f"{'source words':>14} {'n':>6} {'BLEU':>7}  95% interval"]
    for b in report["buckets"]:
        lines.append(f"{b['range']:>14} {b['n']:>6} {b['bleu']:>7.2f}  {_ci(b)}")
    if any(c["k"] > 1 for c in report["concat"]):
        lines += ["", f"{'concat k':>14} {'n':>6} {'BLEU':>7}  95% interval      mean source words"]
        for c in report["concat"]:
            lines.append(f"{c['k']:>14} {c['n']:>6} {c['bleu']:>7.2f}  {_ci(c):<17} {c['src_words']:.1f}")
    return "\n".join(lines)
