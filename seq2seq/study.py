"""`seq2seq study FILE`: a controlled experiment, written down as a file and run by one command.

A study file (configs/studies/*.yaml) names the data, the variants (a model and `--set`
overrides each, on top of overrides that every variant shares), the seeds, the training budget
in updates (not seconds: the same file gives the same runs on any machine) and the evaluation.
The command trains every (variant, seed) as its own `seq2seq train` process, N at a time with
the cores split between them, evaluates each, and writes the comparison table, its figures and
the HTML report into the study's folder. Run again after an interruption, it resumes unfinished
runs and skips finished ones; on the CPU the same file gives the same numbers.

    OUT/<variant>/seed<N>/   the runs (run.json names the variant)
    OUT/logs/                each process's output
    OUT/table.md, table.json, length.png, position.png, curves.png, report.html
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from seq2seq.config import load_config, read_yaml
from seq2seq.errors import UserError
from seq2seq.rundir import RunDir

STUDY_KEYS = ("description", "model", "data", "set", "variants", "seeds", "steps", "eval", "baseline")


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    overrides: dict[str, object]  # section.key -> value, the shared ones included
    steps: int  # its budget in updates


@dataclass(frozen=True)
class Study:
    path: Path
    variants: list[Variant]
    seeds: list[int]
    concat: list[int] = field(default_factory=lambda: [1])
    beams: list[int] = field(default_factory=lambda: [1])
    baseline: str | None = None

    def runs(self, out: Path) -> list[tuple[Variant, int, Path]]:
        """Every (variant, seed) and its run dir, variants in the file's order, seeds within them."""
        return [(v, seed, out / v.name / f"seed{seed}") for v in self.variants for seed in self.seeds]


def load_study(path: Path) -> Study:
    """Read and check a study file; every variant's config is resolved here, so that a bad key
    or value is one line before anything trains."""
    raw = read_yaml(path)
    where = str(path)
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping with {', '.join(STUDY_KEYS)}")
    unknown = [key for key in raw if key not in STUDY_KEYS]
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r} (a study has {', '.join(STUDY_KEYS)})")
    for key in ("variants", "seeds"):
        if key not in raw:
            raise UserError(f"{where}: no {key!r}")
    shared = _overrides(raw.get("set") or {}, f"{where}: set")
    data = _mapping(raw.get("data") or {}, f"{where}: data")
    shared |= {f"data.{key}": value for key, value in data.items()}
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and s >= 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise UserError(f"{where}: seeds must be a list of different non-negative integers, got {seeds!r}")
    evaluation = _mapping(raw.get("eval") or {}, f"{where}: eval")
    concat, beams = evaluation.pop("concat", [1]), evaluation.pop("beam", [1])
    if evaluation:
        raise UserError(f"{where}: eval has concat and beam, not {next(iter(evaluation))!r}")
    beams = beams if isinstance(beams, list) else [beams]
    for name, values in (("eval.concat", concat), ("eval.beam", beams)):
        if not isinstance(values, list) or not values or not all(_is_int(v) and v >= 1 for v in values):
            raise UserError(f"{where}: {name} must be positive integers, got {values!r}")
    variants = []
    for name, spec in _mapping(raw["variants"], f"{where}: variants").items():
        spec = _mapping(spec or {}, f"{where}: variants.{name}")
        if set(spec) - {"model", "set", "steps"}:
            raise UserError(f"{where}: variants.{name} has model, set and steps, not "
                            f"{sorted(set(spec) - {'model', 'set', 'steps'})[0]!r}")
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise UserError(f"{where}: variant name {name!r} must be a plain folder name")
        model = spec.get("model", raw.get("model", "bahdanau"))
        overrides = shared | _overrides(spec.get("set") or {}, f"{where}: variants.{name}.set")
        load_config(None, {"model.name": model, **overrides}, model=model)  # checks every key and value
        steps = spec.get("steps", raw.get("steps"))
        if not _is_int(steps) or steps < 1:
            raise UserError(f"{where}: variants.{name}: steps must be a positive integer (updates per run, at the "
                            f"top or in the variant), got {steps!r}")
        variants.append(Variant(name, model, overrides, steps))
    if not variants:
        raise UserError(f"{where}: no variants")
    baseline = raw.get("baseline")
    if baseline is not None and baseline not in [v.name for v in variants]:
        raise UserError(f"{where}: baseline {baseline!r} is not one of the variants")
    return Study(Path(path), variants, seeds, sorted(set(concat)), sorted(set(beams)), baseline)


def _mapping(raw: object, where: str) -> dict:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping, got {type(raw).__name__}")
    return dict(raw)


def _overrides(raw: object, where: str) -> dict[str, object]:
    """`set`: a mapping of section.key to value, as --set takes them."""
    out = _mapping(raw, where)
    for key in out:
        if not isinstance(key, str) or "." not in key:
            raise UserError(f"{where}: keys are section.key, got {key!r}")
        if key in ("train.seed", "train.max_steps"):
            raise UserError(f"{where}: {key} is the study's (seeds, steps), not a variant's")
    return out


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# -- running it ------------------------------------------------------------------------------------

def run_study(path: Path, out: Path | None, jobs: int, dataset: str | None, device: str | None) -> None:
    study = load_study(path)
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    out = out or Path("runs") / "studies" / path.stem
    (out / "logs").mkdir(parents=True, exist_ok=True)
    runs = study.runs(out)
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // jobs))
    env = os.environ | {"OMP_NUM_THREADS": threads}
    steps = sorted({v.steps for v in study.variants})
    budget = f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}-{steps[-1]:,}"
    print(f"study {path}: {len(study.variants)} variants x {len(study.seeds)} seeds, {budget} updates each, "
          f"{jobs} at a time on {threads} thread{'s' * (threads != '1')} each, into {out}", file=sys.stderr)
    started = time.monotonic()
    order = sorted(range(len(runs)), key=lambda i: runs[i][1] != study.seeds[0] and study.seeds.index(runs[i][1]))
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # seed by seed: an interrupted study has whole seeds
        done = dict(zip(order, pool.map(lambda i: _run_one(study, *runs[i], out / "logs", env, dataset, device), order)))
    results = [done[i] for i in range(len(runs))]
    failed = [(run, message) for (_, _, run), message in zip(runs, results) if message]
    trained = time.monotonic() - started
    if failed:
        for run, message in failed:
            print(f"study: {run}: {message}", file=sys.stderr)
        raise UserError(f"{len(failed)} of {len(runs)} runs did not finish (logs in {out / 'logs'}); "
                        f"run `seq2seq study {path}` again to resume them", exit_code=1)
    started = time.monotonic()
    written = compare_study(study, out)
    print(f"study: training and evaluation took {_clock(trained)}, the comparison {_clock(time.monotonic() - started)}; "
          f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)


def _run_one(study: Study, variant: Variant, seed: int, run_dir: Path, logs: Path, env: dict,
             dataset: str | None, device: str | None) -> str | None:
    """Train (or resume) one run to the study's budget and evaluate it; the error, or None."""
    run = RunDir(run_dir)
    log = logs / f"{variant.name}-seed{seed}.out"
    seq2seq = [sys.executable, "-m", "seq2seq"]
    steps_done = run.read_info().steps or 0
    if steps_done < variant.steps:
        if run.checkpoint("last").exists():
            command = [*seq2seq, "train", "--resume", str(run_dir)]
        else:
            command = [*seq2seq, "train", "--model", variant.model, "--run-dir", str(run_dir),
                       "--seed", str(seed), "--max-steps", str(variant.steps)]
            command += [part for key, value in variant.overrides.items() for part in ("--set", f"{key}={_yaml(value)}")]
            command += ["--dataset", dataset] if dataset else []
            command += ["--overwrite"] if run_dir.exists() else []  # a run stopped before its first checkpoint
        command += ["--device", device] if device else []
        if not _call(command, log, env, f"training {variant.name} seed {seed}"):
            return f"training failed: see {log}"
        run.update_info(variant=variant.name)
    for beam in study.beams:
        if run.report("test", beam).exists():
            continue
        command = [*seq2seq, "eval", str(run_dir), "--concat", ",".join(map(str, study.concat)), "--beam", str(beam)]
        command += ["--device", device] if device else []
        if not _call(command, log, env, f"evaluating {variant.name} seed {seed}" + (f", beam {beam}" if beam > 1 else "")):
            return f"evaluation failed: see {log}"
    return None


def _call(command: list[str], log: Path, env: dict, label: str) -> bool:
    started = time.monotonic()
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        ok = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env).returncode == 0
    print(f"study: {label} {'took' if ok else 'FAILED after'} {_clock(time.monotonic() - started)}", file=sys.stderr)
    return ok


def _yaml(value: object) -> str:
    """A value as --set reads it back (YAML)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def compare_study(study: Study, out: Path) -> list[Path]:
    """The table (markdown and JSON: one row per variant, its seeds grouped), the figures and the
    HTML report of the study's runs, of its first beam; each written whole or not at all."""
    from seq2seq import plots
    from seq2seq.compare import compare_runs, curves
    from seq2seq.evaluate import run_attention
    from seq2seq.files import atomic_write_text
    from seq2seq.report import write_report
    from seq2seq.tables import render_comparison

    run_dirs = [run for _, _, run in study.runs(out)]
    beam = study.beams[0]
    baseline = next((run for v, _, run in study.runs(out) if v.name == study.baseline), None)
    found = compare_runs(run_dirs, beam, baseline)
    written = [out / "table.md", out / "table.json", out / "concat.png", out / "length.png", out / "position.png",
               out / "curves.png", out / "report.html"]
    atomic_write_text(written[0], render_comparison(found.rows, "markdown") + "\n")
    atomic_write_text(written[1], render_comparison(found.rows, "json") + "\n")
    plots.save(plots.concat_figure(found.rows), written[2])
    plots.save(plots.length_figure(found.rows), written[3])
    plots.save(plots.position_figure(found.rows), written[4])
    plots.save(curves(found.runs), written[5])
    write_report(run_dirs, written[6], beam, baseline=baseline, attend=run_attention)
    return written
