"""The house's shape: imports point down, never in a circle; the CLI is on top and its commands import no other."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = {"embed", "select", "evaluate", "bench", "plot", "report", "demo"}


def _modules() -> Dict[str, Path]:
    mods = {}
    for p in (SRC / "bilaf").rglob("*.py"):
        name = ".".join(p.relative_to(SRC).with_suffix("").parts)
        mods[name[: -len(".__init__")] if name.endswith(".__init__") else name] = p
    return mods


def _graph() -> Dict[str, Set[str]]:
    """Module -> the bilaf modules it imports (module level and inside functions alike)."""
    mods = _modules()
    edges: Dict[str, Set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        package = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for cand in [target] + [f"{target}.{a.name}" for a in node.names]:
                    if cand in mods and cand != m:
                        edges[m].add(cand)
            elif isinstance(node, ast.Import):
                edges[m].update(a.name for a in node.names if a.name in mods and a.name != m)
    return edges


def _cycles(g: Dict[str, Set[str]]) -> List[List[str]]:
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_modules():
    mods = _modules()
    g = _graph()
    # a package's __init__ re-exports what lies below it; cycles through those hubs are not design cycles
    g = {m: {t for t in ts if mods[t].name != "__init__.py"} for m, ts in g.items()}
    assert _cycles(g) == []


def test_no_import_cycle_between_rooms():
    def room(m: str) -> str:
        return ".".join(m.split(".")[:2])

    rooms: Dict[str, Set[str]] = {}
    for m, ts in _graph().items():
        for t in ts:
            if room(m) != room(t):
                rooms.setdefault(room(m), set()).add(room(t))
    assert _cycles(rooms) == []


def test_nothing_below_the_cli_imports_it_and_no_command_imports_another():
    g = _graph()
    up = sorted((m, t) for m, ts in g.items() for t in ts
                if t.startswith("bilaf.cli") and not m.startswith("bilaf.cli") and m != "bilaf.__main__")
    assert up == []
    across = sorted((m, t) for m, ts in g.items() for t in ts
                    if m.rsplit(".", 1)[-1] in COMMANDS and m.startswith("bilaf.cli.")
                    and t.rsplit(".", 1)[-1] in COMMANDS and t.startswith("bilaf.cli.") and t != m)
    assert across == []


def test_the_graph_sees_imports_inside_functions():
    # the checks above would pass vacuously if function-level imports were missed
    g = _graph()
    assert "bilaf.features.inputs" in g["bilaf.evaluation.raw_samples"]
    assert "bilaf.cli.common" in g["bilaf.cli.bench"]


#: The lower floors of the house, bottom up: a room on a floor imports only rooms on lower floors. The rooms
#: above the selectors (api, engines, cli, ...) are held by the tests above.
FLOORS = [
    {"bilaf.errors", "bilaf.utils"},
    {"bilaf.validation", "bilaf.threads", "bilaf.result"},
    {"bilaf.param_constraints", "bilaf.kernels"},
    {"bilaf.params"},
    {"bilaf.algorithms", "bilaf.method"},
    {"bilaf.selectors"},
]


def _floor_violations(g: Dict[str, Set[str]]) -> List[tuple]:
    floor = {r: i for i, rooms in enumerate(FLOORS) for r in rooms}

    def room(m: str) -> str:
        return ".".join(m.split(".")[:2])

    bad = []
    for m, ts in g.items():
        if room(m) not in floor:
            continue
        for t in ts:
            if room(t) != room(m) and floor.get(room(t), len(FLOORS)) >= floor[room(m)]:
                bad.append((m, t))
    return sorted(bad)


def test_lower_floors_import_only_from_below():
    assert _floor_violations(_graph()) == []


def test_the_floor_check_sees_an_arrow_up():
    g = _graph()
    g["bilaf.algorithms.kmeans"] = g["bilaf.algorithms.kmeans"] | {"bilaf.selectors.kmeans"}
    g["bilaf.kernels.distances"] = g["bilaf.kernels.distances"] | {"bilaf.method.assign"}
    assert _floor_violations(g) == [("bilaf.algorithms.kmeans", "bilaf.selectors.kmeans"),
                                    ("bilaf.kernels.distances", "bilaf.method.assign")]
