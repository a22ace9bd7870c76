"""The package's shape holds: each folder imports only the folders below it, nothing imports in a
circle (imports inside functions included), only notebook/ touches IPython, ipywidgets, traitlets or
tqdm.notebook, only views/ writes markup, and the public API is what the README documents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbtools

PACKAGE = Path(nbtools.__file__).parent
JUPYTER = ("IPython", "ipywidgets", "traitlets", "tqdm.notebook")
# What users pass in: the options, prompts and errors every part of the package speaks.
BASE = {"errors", "checks", "prompts", "options", "schemas"}
ENTRY = {"__init__", "__main__"}  # where the parts meet: may import anything
# Each part and the parts it may import (besides itself). The root is what users call and get back.
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "engine": {"base"},
    "views": {"base", "engine"},
    "root": {"base", "engine", "views"},
    "notebook": {"base", "engine", "views", "root"},
    "sim": {"base", "engine"},  # a server of its own, sharing the engine's limiter and checks
    "entry": {"base", "engine", "views", "root", "notebook", "sim"},
}
MARKUP = re.compile(r"<(div|span|table|tr|td|th|svg|rect|style|b|br|code|details|summary)[\s>/]|style=['\"]")


def part(module: str) -> str:
    """The part of the package a dotted module name (without ``nbtools.``) belongs to."""
    top = module.split(".")[0].lstrip("_")
    if top in ("base", "engine", "views", "notebook", "sim"):
        return top
    if top in ENTRY or top == "":
        return "entry"
    return "root"


def imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[str, int]]:
    """(imported module, line) for every import that runs, inside functions too (not those under
    ``if TYPE_CHECKING:``). ``from package import name`` counts as importing ``package.name`` when that
    is a module."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    package = path.relative_to(root).with_suffix("").parts
    package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ((node.module,) if node.module else ()))
            else:
                base = node.module or ""
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


def layer_violations(package: Path = PACKAGE) -> list[str]:
    wrong = []
    for name, path in modules(package):
        mine = part(name)
        for target, line in imports(path, package.parent):
            if target.startswith(JUPYTER) and mine not in ("notebook", "entry"):
                wrong.append(f"{name}:{line} imports {target}: only notebook/ may")
            if target == "nbtools" or target.startswith("nbtools."):
                theirs = part(target.removeprefix("nbtools").removeprefix("."))
                if theirs != mine and theirs not in ALLOWED[mine]:
                    wrong.append(f"{name}:{line} imports {target}: {mine} may import only {sorted(ALLOWED[mine])}")
    return wrong


def import_cycles(package: Path = PACKAGE) -> list[list[str]]:
    """Every circle of runtime imports between the package's modules (Tarjan's strongly connected parts)."""
    names = {name for name, _ in modules(package)}
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in modules(package):
        for target, _ in imports(path, package.parent):
            target = target.removeprefix("nbtools").removeprefix(".")
            if target.startswith(tuple(JUPYTER)) or not (target in names or target == ""):
                continue
            if target != name:
                graph[name].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_each_folder_imports_only_the_folders_below_it() -> None:
    assert not layer_violations(), "\n".join(layer_violations())


def test_no_module_imports_in_a_circle() -> None:
    assert not import_cycles(), import_cycles()


def test_only_views_write_markup() -> None:
    wrong = []
    for name, path in modules():
        if part(name) in ("views", "sim"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue  # a docstring may name a tag
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and MARKUP.search(node.value):
                wrong.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
    assert not wrong, "HTML outside views/:\n" + "\n".join(wrong)


def escaping_elsewhere(package: Path = PACKAGE) -> list[str]:
    """Where untrusted text could be escaped or clipped other than by views/escaping.py: the stdlib's
    ``html`` imported, or an ``escape`` / ``clip`` of its own defined."""
    wrong = []
    for name, path in modules(package):
        if name == "views.escaping" or part(name) == "sim":
            continue
        wrong += [f"{name}:{line} imports {target}" for target, line in imports(path, package.parent)
                  if target.split(".")[0] in ("html", "markupsafe")]
        wrong += [f"{name}:{node.lineno} defines {node.name}" for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.FunctionDef) and node.name in ("escape", "clip")]
    return wrong


def test_untrusted_text_is_escaped_and_clipped_in_one_place() -> None:
    assert not escaping_elsewhere(), "\n".join(escaping_elsewhere())


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "nbtools"
    for name, text in {"__init__.py": "", "engine/__init__.py": "", "views/__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_layer_check_sees_an_upward_import_even_inside_a_function(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "engine/limiter.py": "def f():\n    from nbtools._views import report\n    import IPython\n"
                             "if TYPE_CHECKING:\n    from nbtools._notebook import magics\n",
        "views/report.py": "",
    })
    wrong = layer_violations(root)
    assert any("imports nbtools._views.report" in w for w in wrong) and any("imports IPython" in w for w in wrong)
    assert not any("magics" in w for w in wrong)


def test_the_cycle_check_sees_a_circle_made_inside_a_function(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "api.py": "from nbtools._dry_run import dry_run\n",
        "dryrun.py": "def dry_run():\n    from nbtools._api import prepare\n",
        "engine/run.py": "from nbtools._engine import limiter\n",
        "engine/limiter.py": "",
    })
    assert import_cycles(root) == [["api", "dryrun"]]


def test_the_escaping_check_sees_a_second_escape(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "views/escaping.py": "import html\ndef escape(text):\n    return html.escape(text)\n",
        "views/report.py": "from html import escape\n",
        "dryrun.py": "def clip(text, width):\n    return text[:width]\n",
    })
    assert sorted(escaping_elsewhere(root)) == ["dryrun:1 defines clip", "views.report:1 imports html"]


def test_the_public_api_is_what_the_readme_documents() -> None:
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme.split("## The Python API", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"nbtools\.(\w+)", section)) - {"__all__"}
    assert documented == set(nbtools.__all__), (documented ^ set(nbtools.__all__))
    for name in nbtools.__all__:
        assert getattr(nbtools, name) is not None
