"""The package's shape, read from its source: modules import one another without a circle
(function-level imports count), evaluation does not import the training loop, the reporting
side imports no torch, and no function, class or module outgrows its room."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = Path(__file__).resolve().parents[1] / "seq2seq"
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 150
MAX_MODULE_LINES = 300
# What `seq2seq compare` and `seq2seq report` run on: a table of runs is made where torch is not installed.
REPORTING = ["seq2seq.compare", "seq2seq.report", "seq2seq.tables", "seq2seq.significance", "seq2seq.seeds",
             "seq2seq.examples", "seq2seq.plots", "seq2seq.metrics", "seq2seq.runfiles", "seq2seq.rundir",
             "seq2seq.config", "seq2seq.models", "seq2seq.models.configs", "seq2seq.cli"]
WITHOUT_TORCH = "import sys; sys.modules['torch'] = None  # `import torch` raises ImportError from here on\n"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in it (a function-level import counts)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seq2seq"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names} & modules.keys()  # from pkg import module
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("seq2seq")}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle_among_the_package_modules():
    assert find_cycle(imports()) is None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_evaluation_does_not_import_the_training_loop():
    graph = imports()
    reachable, todo = set(), ["seq2seq.evaluate"]
    while todo:
        for nxt in graph[todo.pop()] - reachable:
            reachable.add(nxt)
            todo.append(nxt)
    assert not reachable & {"seq2seq.train", "seq2seq.trainer"}


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long


def test_no_class_outgrows_its_room():
    long = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                long.add(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert long == set()


def test_no_module_outgrows_its_room():
    long = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
            if len(path.read_text(encoding="utf-8").splitlines()) > MAX_MODULE_LINES}
    assert long == set()


def without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH + code], capture_output=True, text=True, cwd=ROOT)


def test_the_reporting_modules_import_without_torch():
    assert without_torch("import torch").returncode != 0  # the interpreter below has no torch
    for module in REPORTING:
        ran = without_torch(f"import {module}")
        assert ran.returncode == 0, f"{module}: {ran.stderr}"


def test_compare_prints_the_readme_table_without_torch():
    from tests.test_docs import STUDY, table_rows

    runs = [str((STUDY / m).relative_to(ROOT)) for m in ("rnn", "lstm", "bahdanau", "transformer")]
    args = ["compare", *runs, "--baseline", runs[2], "--columns", "run,params,k=1,k=6,k=6 / k=1,NLL rise k=6",
            "--format", "markdown"]
    ran = without_torch(f"sys.argv = ['seq2seq', *{args!r}]\nfrom seq2seq.cli import main\nmain()")
    assert ran.returncode == 0, ran.stderr
    readme = table_rows((ROOT / "README.md").read_text(encoding="utf-8"), runs)
    assert len(readme) == 4 and table_rows(ran.stdout, runs) == readme
