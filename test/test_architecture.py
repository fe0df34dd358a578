"""The package's layers (docs/architecture.md): no import cycle between modules, no upward import between
packages. Function-level imports count too: a lazy import is still a dependency."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "flownet_ros"

#: modules every layer may import: file locations (paths) and the tools' common error handling (cli); they
#: import nothing of the package
BASE = {"paths", "cli"}
#: package -> the packages it may import (besides itself and BASE); the order of docs/architecture.md
ALLOWED = {
    "paths": set(),
    "cli": set(),
    "flow": {"paths"},
    "ops": {"paths"},
    "imaging": {"paths"},
    "models": {"ops", "paths"},
    "inference": {"flow", "imaging", "models", "ops", "paths"},
    "data": {"flow", "paths"},
    "ros": {"flow", "imaging", "inference", "models", "ops", "paths"},
    "evaluation": {"data", "flow", "imaging", "inference", "models", "ops", "paths", "ros"},
    "train": {"data", "flow", "inference", "models", "ops", "paths"},
    "bench": {"data", "flow", "imaging", "inference", "models", "ops", "paths", "ros", "train"},
    "demo": {"evaluation", "inference", "models", "paths", "ros"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict:
    """module -> the flownet_ros modules it imports (``from pkg import name`` counts as pkg.name when that is a
    module, else pkg)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for mod, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flownet_ros"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("flownet_ros"))
        graph[mod] = deps - {mod}
    return graph


def package_of(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_no_upward_import_between_packages():
    wrong = sorted(f"{mod} imports {dep}" for mod, deps in imports().items() for dep in deps
                   if package_of(mod) and package_of(dep) and package_of(dep) != package_of(mod)
                   and package_of(dep) not in ALLOWED[package_of(mod)] | BASE)
    assert not wrong, "\n".join(wrong)


def find_cycle(graph: dict):
    """One import cycle as a list of modules, or None (package __init__ re-exports are edges too, but a
    package's own modules importing the package they live in are not cycles Python trips over: skipped)."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if node.startswith(dep + "."):  # a module importing its own package (its __init__)
                continue
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, stack)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [])
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = find_cycle(imports())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
