"""The package's shape holds, as a rule about its folders: each floor imports only the floors below it, nothing
imports in a circle, only the notebook floor touches IPython, ipywidgets, traitlets or tqdm.notebook, only the
views write markup, and untrusted text is escaped in one place.

The floors, bottom to top: ``_base/`` (the shared vocabulary), ``_engine/`` (sends requests, knows the wire),
``_views/`` (every text, HTML and SVG), the package's own modules (what users call and get back) and
``_notebook/`` (IPython and widgets). ``sim/`` is a server of its own beside them, on ``_base/`` and ``_engine/``;
``__init__`` and ``__main__`` are where the parts meet. Every import counts: inside functions and under
``if TYPE_CHECKING:`` too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbtools

PACKAGE = Path(nbtools.__file__).parent
JUPYTER = ("IPython", "ipywidgets", "traitlets", "tqdm.notebook")
FLOORS = ("_base", "_engine", "_views", "", "_notebook")  # bottom to top; "": the package's own modules
BESIDE = {"sim": ("_base", "_engine")}  # a floor apart, and the floors it stands on
ENTRY = ("__init__", "__main__")  # the package itself and its command: where the parts meet
MARKUP = re.compile(r"<(div|span|table|tr|td|th|svg|rect|style|b|br|code|details|summary)[\s>/]|style=['\"]")


def floor(module: str, package: Path = PACKAGE) -> str:
    """The floor a dotted module name (without ``nbtools.``) stands on: its folder, "" for the package's own
    modules, or "entry"."""
    parts = module.split(".") if module else []
    if not parts or (len(parts) == 1 and parts[0] in ENTRY):
        return "entry"
    return parts[0] if len(parts) > 1 or (package / parts[0]).is_dir() else ""


def below(mine: str) -> tuple[str, ...]:
    """The floors a module on ``mine`` may import (besides its own)."""
    if mine == "entry":
        return (*FLOORS, *BESIDE)
    if mine in BESIDE:
        return BESIDE[mine]
    return FLOORS[: FLOORS.index(mine)]


def imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, inside functions and under ``if TYPE_CHECKING:``
    too. ``from package import name`` counts as importing ``package.name`` when that is a module."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ((node.module,) if node.module else ()))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (root.joinpath(*sub.split(".")).with_suffix(".py").exists()
                             or root.joinpath(*sub.split("."), "__init__.py").exists())
                found.append((sub if is_module else base, node.lineno))
    return found


def modules(package: Path = PACKAGE) -> list[tuple[str, Path]]:
    """(dotted name under nbtools, path) of every module; a package is its ``__init__``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def _own(target: str) -> str | None:
    """``target`` as a module name under nbtools, or None when it is not ours."""
    if target == "nbtools" or target.startswith("nbtools."):
        return target.removeprefix("nbtools").removeprefix(".")
    return None


def layer_violations(package: Path = PACKAGE) -> list[str]:
    wrong = []
    for name, path in modules(package):
        mine = floor(name, package)
        for target, line in imports(path, package.parent):
            if target.startswith(JUPYTER) and mine not in ("_notebook", "entry"):
                wrong.append(f"{name}:{line} imports {target}: only _notebook/ may")
            own = _own(target)
            theirs = None if own is None else floor(own, package)
            if theirs is not None and theirs != mine and theirs not in below(mine):
                wrong.append(f"{name}:{line} imports nbtools.{own}: {mine or 'the root'} may import only "
                             f"{[f or 'the root' for f in below(mine)]}")
    return wrong


def import_cycles(package: Path = PACKAGE) -> list[list[str]]:
    """Every circle of imports between the package's modules."""
    names = {name for name, _ in modules(package)}
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in modules(package):
        for target, _ in imports(path, package.parent):
            own = _own(target)
            if own is not None and own in names and own != name:
                graph[name].add(own)
    return [group for group in _strongly_connected(graph) if len(group) > 1]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected parts (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = [stack.pop()]
            while group[-1] != node:
                group.append(stack.pop())
            cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def escaping_elsewhere(package: Path = PACKAGE) -> list[str]:
    """Where untrusted text could be escaped or clipped other than by _views/escaping.py: the stdlib's ``html``
    imported, or an ``escape`` / ``clip`` of its own defined."""
    wrong = []
    for name, path in modules(package):
        if name == "_views.escaping" or name.startswith("sim"):
            continue
        wrong += [f"{name}:{line} imports {target}" for target, line in imports(path, package.parent)
                  if target.split(".")[0] in ("html", "markupsafe")]
        wrong += [f"{name}:{node.lineno} defines {node.name}" for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.FunctionDef) and node.name in ("escape", "clip")]
    return wrong


def test_each_floor_imports_only_the_floors_below_it() -> None:
    assert not layer_violations(), "\n".join(layer_violations())


def test_no_module_imports_in_a_circle() -> None:
    assert not import_cycles(), import_cycles()


def test_only_views_write_markup() -> None:
    wrong = []
    for name, path in modules():
        if floor(name) in ("_views", "sim"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue  # a docstring may name a tag
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and MARKUP.search(node.value):
                wrong.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
    assert not wrong, "HTML outside _views/:\n" + "\n".join(wrong)


def test_untrusted_text_is_escaped_and_clipped_in_one_place() -> None:
    assert not escaping_elsewhere(), "\n".join(escaping_elsewhere())


# -- the checks above, shown to see what they must ------------------------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "nbtools"
    for name, text in {"__init__.py": "", "_engine/__init__.py": "", "_views/__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_floor_check_sees_an_upward_import_inside_a_function_and_under_type_checking(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "_engine/limiter.py": "def f():\n    from nbtools._views import report\n    import IPython\n"
                              "if TYPE_CHECKING:\n    from nbtools._result import BatchResult\n",
        "_views/report.py": "",
        "_result.py": "",
        "_base/errors.py": "from nbtools._engine import limiter\n",
    })
    wrong = layer_violations(root)
    assert any("limiter:2 imports nbtools._views.report" in w for w in wrong)
    assert any("limiter:3 imports IPython" in w for w in wrong)
    assert any("limiter:5 imports nbtools._result" in w for w in wrong)  # under TYPE_CHECKING: it counts too
    assert any("_base.errors:1 imports nbtools._engine.limiter" in w for w in wrong)


def test_the_cycle_check_sees_a_circle_made_inside_a_function(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "_api.py": "from nbtools._dry_run import dry_run\n",
        "_dry_run.py": "def dry_run():\n    from nbtools._api import prepare\n",
        "_engine/run.py": "from nbtools._engine import limiter\n",
        "_engine/limiter.py": "",
    })
    assert import_cycles(root) == [["_api", "_dry_run"]]


def test_the_escaping_check_sees_a_second_escape(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "_views/escaping.py": "import html\ndef escape(text):\n    return html.escape(text)\n",
        "_views/report.py": "from html import escape\n",
        "_dry_run.py": "def clip(text, width):\n    return text[:width]\n",
    })
    assert sorted(escaping_elsewhere(root)) == ["_dry_run:1 defines clip", "_views.report:1 imports html"]
