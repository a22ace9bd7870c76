"""The public face of nbtools is exactly ``__all__`` (and the IPython extension hook), and the machinery below it
does not advertise itself: no module but the two public ones declares an ``__all__``."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import nbtools

PUBLIC_MODULES = ("nbtools", "nbtools.sim")  # what users import; everything else is private machinery


def public_names(module: types.ModuleType) -> set[str]:
    """The names a user finds on ``module`` once every module of the package has been imported: its attributes
    (imported submodules included) and the names its ``__getattr__`` resolves, that do not start with ``_``."""
    for info in pkgutil.walk_packages(module.__path__, module.__name__ + "."):
        importlib.import_module(info.name)
    names = {name for name in vars(module) if not name.startswith("_")}
    return names | {name for name in getattr(module, "__all__", ()) if hasattr(module, name)}


def test_the_public_names_of_nbtools_are_exactly_all_and_the_extension_hook() -> None:
    assert public_names(nbtools) == {*nbtools.__all__, "load_ipython_extension"}
    assert len(nbtools.__all__) == len(set(nbtools.__all__))


def test_the_check_sees_a_module_that_leaks_into_the_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "leaky"
    (package / "engine").mkdir(parents=True)
    (package / "__init__.py").write_text("from leaky.engine import run\n__all__ = ['run', 'missing']\n")
    (package / "engine" / "__init__.py").write_text("def run(): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    leaky = importlib.import_module("leaky")
    assert public_names(leaky) == {"run", "engine"}  # the folder shows, and a name in __all__ that is not there does not


def test_no_machinery_module_declares_an_all() -> None:
    root = Path(nbtools.__file__).parent
    declaring = []
    for path in sorted(root.rglob("*.py")):
        name = ".".join(("nbtools", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
               for node in tree.body):
            declaring.append(name)
    assert declaring == sorted(PUBLIC_MODULES)


def test_every_public_name_is_documented_where_it_is_defined() -> None:
    undocumented = [name for name in nbtools.__all__ if name != "sim" and not (getattr(nbtools, name).__doc__ or "").strip()]
    assert undocumented == []
