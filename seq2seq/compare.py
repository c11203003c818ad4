"""`seq2seq compare`: one table of evaluated runs, read from their files (runfiles.py), nothing
decoded again: the rows, the p-values against a baseline, the runs of one setup grouped by
seed, and the table's figures and examples."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from seq2seq import plots
from seq2seq.errors import UserError
from seq2seq.examples import most_different
from seq2seq.metrics import finite_bound, ratio_interval
from seq2seq.rundir import RunDir, check_output
from seq2seq.runfiles import EvalReport, check_which, read_report
from seq2seq.seeds import group_seeds, seed_baselines, setups
from seq2seq.significance import add_p_values, baseline_index, report_groups, sentence_groups
from seq2seq.tables import ADDED_KEYS, render_comparison

BUCKET_KEYS = ("range", "n", "bleu", "ci_low", "ci_high", *ADDED_KEYS)  # a row's, in this order
PROBE_KEYS = ("k", "src_words", "n", "bleu", "ci_low", "ci_high", *ADDED_KEYS, "position_nll")
FIGURES = {"--plot": plots.length_figure, "--plot-position": plots.position_figure,
           "--plot-concat": plots.concat_figure}  # drawn from the rows; --curves from the metrics


@dataclass
class Comparison:
    runs: list[dict]  # one row per run (load_comparison), with p-values where there is a baseline
    rows: list[dict]  # one row per setup: the runs of several seeds grouped (group_seeds)
    groups: list[dict | None]  # each run's sentence statistics (sentence_groups)


def compare(runs: list[Path], beam: int, fmt: str, baseline: Path | None, figures: dict[str, Path],
            examples: int, columns: list[str] | None, which: str = "best") -> None:
    """What `seq2seq compare` prints (the table, then any examples), and the figures it draws
    (figures: option -> file, checked before anything is read), of the runs' `which` checkpoints."""
    if examples < 0:
        raise UserError(f"--examples must be 0 or more, got {examples}")
    if examples and fmt in ("csv", "json"):
        raise UserError("--examples prints text after the table: use it with --format table or markdown")
    for option, path in figures.items():
        plots.figure_format(path)
        check_output(path, option)
    found = compare_runs(runs, beam, baseline, which)
    table = render_comparison(found.rows, fmt, columns)
    shown = most_different(found.runs, examples, found.groups) if examples else None
    for option, path in figures.items():
        plots.save(FIGURES[option](found.rows) if option in FIGURES else curves(found.runs), path)
    print(table)
    if shown:
        print(f"\n{shown}")


def curves(runs: list[dict]):
    """The validation curves of the runs compared (plots.curves_figure)."""
    return plots.curves_figure(runs, [RunDir(row["run"]).read_metrics() for row in runs])


def compare_runs(run_dirs: list[str | Path], beam: int = 1, baseline: str | Path | None = None,
                 which: str = "best") -> Comparison:
    """The comparison of runs (their `which` checkpoints' reports): their rows, p-values against
    the baseline (each run against the baseline's run of its seed), and the runs of one setup
    grouped by seed."""
    base = baseline_index(run_dirs, baseline) if baseline is not None else None
    runs = load_comparison(run_dirs, beam, which)
    groups = sentence_groups(runs)
    setup, seeds = setups(runs)
    if base is not None:
        add_p_values(runs, seed_baselines(setup, seeds, base), groups)
    return Comparison(runs, group_seeds(runs, setup, groups), groups)


def load_comparison(run_dirs: list[str | Path], beam: int = 1, which: str = "best") -> list[dict]:
    """One row per run, from what training (run.json, or an exported model's export.json) and
    `seq2seq eval` (eval/test.json, or test.last.json, test.avg.json) wrote. Nothing is decoded
    again: comparing is cheap, and the figures are those the eval reported."""
    if beam < 1:
        raise UserError(f"--beam must be at least 1, got {beam}")
    check_which(which)
    return [comparison_row(run_dir, beam, which) for run_dir in run_dirs]


def comparison_row(run_dir: str | Path, beam: int = 1, which: str = "best") -> dict:
    """A run's row; its "report" is the path of the eval report it was read from, which the
    p-values, examples and signatures read beside."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise UserError(f"run dir not found: {run.path}")
    exported = run.read_export()  # it holds what a run's run.json does, and one checkpoint
    which = "best" if exported else which
    path = run.report("test", beam, which=which)
    again = f"run `seq2seq eval {run.path}{'' if beam == 1 else f' --beam {beam}'}" \
            f"{'' if which == 'best' else f' --checkpoint {which}'}`"
    if not path.exists():
        raise UserError(f"run {run.path} has no {path.relative_to(run.path)}: {again} first")
    report = read_report(path, f"{again} again")
    own = run.read_config().data.dataset
    if report.dataset not in (None, own):
        raise UserError(f"{path} scores dataset {report.dataset}, not the run's own {own}: {again} again")
    info = exported or run.read_info()
    now = None if exported else getattr(info, f"{which}_step")  # the step of the checkpoint there now
    if now is not None and now != report.step:
        print(f"warning: {path} scores the checkpoint of step {report.step}, but the run's {which} checkpoint "
              f"is now of step {now}: {again} again", file=sys.stderr)
    figures = asdict(report)
    return {"run": str(run.path), "report": str(path), "variant": None if exported else info.variant,
            "model": info.model or report.model, "engine": report.engine, "quantization": report.quantization,
            "params": info.params or report.params, "steps": info.steps, "train_seconds": info.train_seconds,
            "val_bleu": info.best_val_bleu, "dataset": own,
            **{key: figures[key] for key in ("checkpoint", "step", "beam", "n", "bleu", "ci_low", "ci_high", "chrf",
                                             *ADDED_KEYS)},
            "buckets": [{key: b[key] for key in BUCKET_KEYS} for b in figures["buckets"]],
            "concat": [{key: c[key] for key in PROBE_KEYS} for c in figures["concat"]],
            "averaged_steps": report.averaged_steps, "k_ratio": k_ratio(report, report_groups(path, run.path))}


def k_ratio(report: EvalReport, groups: dict[str, list[list[int]]] | None) -> dict | None:
    """BLEU at the largest k the report probes as a percentage of BLEU at k=1, with its bootstrap
    95% interval (metrics.ratio_interval: each resample draws joined pairs together with the
    sentences they join). None where the report probes no k > 1, where BLEU at k=1 is 0, and where the
    sentences' statistics are missing (reports of older versions); an interval bound is None where
    it is infinite (resamples of BLEU 0 at k=1), and both are None for --bootstrap 0."""
    k = max(c.k for c in report.concat) if report.concat else 1
    largest = next(c for c in report.concat if c.k == k) if k > 1 else None
    if largest is None or not report.bleu or groups is None or largest.bleu is None:
        return None
    interval = ratio_interval([groups.get("all", [])], [groups.get(f"k={k}", [])], k, report.bootstrap)
    low, high = interval or (None, None)
    return {"k": k, "ratio": round(100 * largest.bleu / report.bleu, 1), "ci_low": finite_bound(low),
            "ci_high": finite_bound(high)}
