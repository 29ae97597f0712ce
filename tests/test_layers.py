"""The package's layers point one way, and the caller side never imports TensorFlow.

Modules are discovered with ``pkgutil`` (without importing them) and placed in a layer by
their path, so a module added anywhere is checked without touching this file; a new
top-level package or module must be given a layer in :data:`LAYERS`.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import infertune

ROOT = Path(infertune.__file__).parent

#: The layers, top to bottom. A module may import modules of its own unit (top-level
#: package or module of ``infertune``) and of units in lower layers; units that share a
#: layer may import each other one way only (the package-cycle test), except the leaves,
#: which import only the base.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("entry points", frozenset({"cli", "__main__"})),
    ("promotion and scheduling", frozenset({"promotion", "scheduling"})),
    ("tuning", frozenset({"tuning"})),
    ("measure", frozenset({"measure"})),
    ("knobs and spaces", frozenset({"knobs", "space"})),
    # The backends declare what each runtime offers (knobs validate against it); their
    # worker halves load models with models' helpers.
    ("runtimes", frozenset({"runtimes"})),
    ("models", frozenset({"models"})),
    ("workers", frozenset({"workers"})),
    ("leaves", frozenset({"storage", "tracking"})),
    (
        "base",
        frozenset(
            {
                "infertune",
                "config",
                "exceptions",
                "hashing",
                "_resources",
                "_lazy",
                "auth",
                "audit",
                "locks",
            }
        ),
    ),
)
#: Layers whose units may not import a unit of the same layer.
ISOLATED_LAYERS = frozenset({"leaves"})

#: Modules that may import TensorFlow, Keras or LiteRT when imported: the worker side. The
#: modules of the worker operations (``workers.server.HANDLERS``) are added to these.
WORKER_SIDE = frozenset(
    {
        "infertune.workers.tfsetup",
        "infertune.models.training",
        "infertune.models.demo_training",
        "infertune.models.graph",
        "infertune.models.inspect",
        "infertune.knobs.pruning",
        "infertune.measure.runner",
        "infertune.runtimes.tf_loader",
        "infertune.runtimes.litert_loader",
        "infertune.promotion.pyfunc_model",
    }
)
HEAVY = ("tensorflow", "keras", "ai_edge_litert")


def _modules() -> dict[str, Path]:
    """Every module of ``infertune`` (name -> file), found without importing any."""
    found = {"infertune": ROOT / "__init__.py"}
    folders = [(ROOT, "infertune.")]
    while folders:
        folder, prefix = folders.pop()
        for info in pkgutil.iter_modules([str(folder)], prefix):
            leaf = info.name.rsplit(".", 1)[-1]
            if info.ispkg:
                found[info.name] = folder / leaf / "__init__.py"
                folders.append((folder / leaf, info.name + "."))
            else:
                found[info.name] = folder / f"{leaf}.py"
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Modules of ``infertune`` that ``name`` imports, anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in MODULES else base)
    resolved = set()
    for target in targets:
        # ``import infertune.a.b`` names a module; keep the longest known prefix.
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target.startswith("infertune") and target != name:
            resolved.add(target)
    return resolved


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    """The top-level package or module of ``infertune`` that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _layer_of(unit: str) -> int:
    for rank, (_, units) in enumerate(LAYERS):
        if unit in units:
            return rank
    raise AssertionError(f"infertune.{unit} has no layer: add it to LAYERS in {__file__}")


def test_discovery_sees_the_package() -> None:
    # Guards the checks below against passing on an empty graph.
    assert {"infertune.measure.engine", "infertune.tuning.study", "infertune.workers.server"} <= (
        set(MODULES)
    )
    assert "infertune.measure.engine" in GRAPH["infertune.tuning.study"]


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_import_cycle_between_packages() -> None:
    units: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        units.setdefault(_unit(module), set()).update(
            _unit(t) for t in targets if _unit(t) != _unit(module)
        )
    cycles = _cycles(units)
    assert not cycles, "package cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_layers_point_one_way() -> None:
    wrong = []
    for module, targets in sorted(GRAPH.items()):
        unit = _unit(module)
        rank = _layer_of(unit)
        for target in sorted(targets):
            other = _unit(target)
            if other == unit:
                continue
            other_rank = _layer_of(other)
            same_isolated = other_rank == rank and LAYERS[rank][0] in ISOLATED_LAYERS
            if other_rank < rank or same_isolated:
                wrong.append(
                    f"{module} ({LAYERS[rank][0]}) imports {target} ({LAYERS[other_rank][0]})"
                )
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def _handler_modules() -> set[str]:
    """The modules named in ``workers/server.py``'s HANDLERS (read, not imported)."""
    tree = ast.parse((ROOT / "workers" / "server.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "HANDLERS"
            and isinstance(node.value, ast.Dict)
        ):
            values = ast.literal_eval(node.value)
            return {str(v).split(":")[0] for v in values.values()}
    raise AssertionError("workers/server.py has no HANDLERS table")


_PROBE = """
import importlib, json, sys
heavy = {heavy!r}
report = {{}}
for name in {names!r}:
    try:
        importlib.import_module(name)
    except Exception as exc:
        report[name] = "import failed: " + type(exc).__name__ + ": " + str(exc)
        continue
    pulled = [m for m in heavy if m in sys.modules]
    if pulled:
        report[name] = "imports " + ", ".join(pulled)
        break
print(json.dumps(report))
"""


def test_caller_side_modules_do_not_import_tensorflow() -> None:
    handlers = _handler_modules()
    assert "infertune.models.demo_training" in handlers
    # The server itself starts every worker, LiteRT ones included: it stays light too.
    worker_side = WORKER_SIDE | (handlers - {"infertune.workers.server"})
    # ``__main__`` modules run the CLI when imported; their imports are in the graph above.
    caller_side = sorted(m for m in MODULES if m not in worker_side and not m.endswith("__main__"))
    assert "infertune.models.demo" in caller_side and "infertune.cli" in caller_side
    probe = _PROBE.format(heavy=HEAVY, names=caller_side)
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report, "caller-side modules:\n" + "\n".join(f"{k}: {v}" for k, v in report.items())


def test_the_probe_sees_what_an_import_pulls_in() -> None:
    probe = _PROBE.format(heavy=("xml.dom",), names=["string", "xml.dom.minidom", "csv"])
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"xml.dom.minidom": "imports xml.dom"}
