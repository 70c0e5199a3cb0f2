"""The layers as the imports draw them: no cycle, and no arrow pointing up.

Arrows may point down only: jobs -> core, data_pipeline, cluster; data_pipeline -> core; cluster ->
core (the config's sections it plans from); core imports none of the others. Imports inside functions count too: a lazy import is still a
dependency. Ray is touched in jobs/, data_pipeline/ and cluster/, never in core/, and the local
reader (evaluation and the ingest floor without a cluster) does not need it either.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "data_pipeline", "cluster", "jobs")
MAY_IMPORT = {"core": {"core"}, "cluster": {"cluster", "core"}, "data_pipeline": {"data_pipeline", "core"},
              "jobs": {"jobs", "core", "data_pipeline", "cluster"}}


def _modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imported(name: str, path: Path) -> set[str]:
    """Every module name this module imports, absolute, at any depth of its code."""
    names = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def _edges(name: str) -> set[str]:
    """The project's modules that `name` imports, each the most specific module the import names."""
    return {target for target in _imported(name, MODULES[name]) if target in MODULES and target != name}


GRAPH = {name: _edges(name) for name in MODULES}


def test_no_arrow_points_up():
    up = sorted(f"{source} -> {target}" for source, targets in GRAPH.items() for target in targets
                if target.split(".")[0] not in MAY_IMPORT[source.split(".")[0]])
    assert not up, "imports against the layers:\n" + "\n".join(up)


def test_no_import_cycle():
    cycles = [component for component in _strongly_connected(GRAPH) if len(component) > 1]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(sorted(c)) for c in cycles)


@pytest.mark.parametrize("where", ["core", "data_pipeline.readers.local"])
def test_ray_is_not_imported(where):
    offenders = sorted(name for name in MODULES if (name == where or name.startswith(where + "."))
                       and any(t == "ray" or t.startswith("ray.") for t in _imported(name, MODULES[name])))
    assert not offenders, f"{where} must run without Ray; these import it: {offenders}"


def test_core_top_level_holds_only_subpackages():
    loose = sorted(path.name for path in (ROOT / "core").glob("*.py") if path.name != "__init__.py")
    assert not loose, f"core/ holds modules beside its subpackages: {loose}"


def test_entry_points_do_not_import_each_other():
    entries = {name for name in MODULES if name.startswith("jobs.") and not name.split(".")[1].startswith("_")}
    crossing = sorted(f"{source} -> {target}" for source in entries for target in GRAPH[source] if target in entries)
    assert not crossing, f"entry points importing one another: {crossing}"


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop(); on_stack.discard(member); component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = counter[0]; counter[0] += 1
                stack.append(child); on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components
