"""The package's shape holds: layers import only downward, only the Jupyter layer touches IPython,
ipywidgets or traitlets, and the public API is what the README documents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbtools

PACKAGE = Path(nbtools.__file__).parent
JUPYTER = ("IPython", "ipywidgets", "traitlets", "tqdm.notebook")

# Lowest first. A module may import its own layer and those below it, never one above.
LAYERS: list[set[str]] = [
    {"_compat", "errors", "checks", "prompts", "failures", "retry", "sse", "limiter", "pacing", "server_budget", "endpoints",
     "prices", "tokens", "spending", "figures", "options", "cache", "client", "adaptive", "blocking", "stops", "cells"},
    {"results", "render", "compare"},  # the result objects and how they render themselves
    {"runner", "live", "sweep", "dryrun", "batchapi"},  # engines and the front-end path
    {"display", "magics", "panel"},  # the Jupyter layer
    {"__init__", "__main__"},
]
SIMULATOR = "sim"  # a server of its own: may use the lowest layer only


def _layer(module: str) -> int:
    top = module.split(".")[0]
    if top == SIMULATOR:
        return 0
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def _imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[str, int]]:
    """(imported module, line) for every import that runs (not those under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ((node.module,) if node.module else ()))
                names = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            found += [(name, node.lineno) for name in names]
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(".".join(p.relative_to(PACKAGE).with_suffix("").parts), p) for p in sorted(PACKAGE.rglob("*.py"))]


def test_every_module_has_a_layer() -> None:
    for name, _ in _modules():
        assert _layer(name.replace(".__init__", "") if name != "__init__" else name) >= 0, name


def test_layers_import_only_downward_and_only_the_jupyter_layer_touches_jupyter() -> None:
    wrong = []
    for name, path in _modules():
        own = name.split(".")[0]
        mine = _layer(own)
        for target, line in _imports(path):
            if target.startswith(JUPYTER) and own not in LAYERS[3] | LAYERS[4]:
                wrong.append(f"{name}:{line} imports {target}: only display, magics and panel may")
            if target.startswith("nbtools."):
                theirs = _layer(target.removeprefix("nbtools."))
                if own == SIMULATOR and not target.startswith("nbtools.sim") and theirs > 0:
                    wrong.append(f"{name}:{line} imports {target}: the simulator uses only the lowest layer")
                elif own != SIMULATOR and theirs > mine:
                    wrong.append(f"{name}:{line} imports {target}, a layer above it")
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "nbtools" / "limiter.py"
    bad.parent.mkdir()
    bad.write_text("from .runner import batch\nimport IPython\nif TYPE_CHECKING:\n    from .magics import x\n")
    found = [target for target, _ in _imports(bad, tmp_path)]
    assert "nbtools.runner" in found and "IPython" in found and "nbtools.magics" not in found


def test_the_public_api_is_what_the_readme_documents() -> None:
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme.split("## The Python API", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"nbtools\.(\w+)", section)) - {"__all__"}
    assert documented == set(nbtools.__all__), (documented ^ set(nbtools.__all__))
    for name in nbtools.__all__:
        assert getattr(nbtools, name) is not None
