"""Each option is declared once (nbtools/options.py); everything that shows or takes an option agrees with it.

These fail when the magic's flags, the %config traits, the panel's controls, the API docstrings or the
README's table drift from the declarations, e.g. after an option was added or changed in one place only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nbtools
from nbtools.notebook.magics import LLMBatch
from nbtools.options import OPTIONS, BatchOptions, Flag, options_table

ROOT = Path(__file__).resolve().parent.parent
class _Shell:
    """Just enough of a shell for a Magics instance, to read its trait defaults."""

    configurables: list = []
    user_ns: dict = {}


MAGIC_ONLY = {"out", "background", "compare", "over", "no_display", "wait", "help"}


def _parser_actions() -> dict[str, list]:
    by_dest: dict[str, list] = {}
    for action in LLMBatch.llm_batch.parser._actions:
        by_dest.setdefault(action.dest, []).append(action)
    return by_dest


def test_the_magic_takes_every_declared_flag_and_no_other() -> None:
    actions = _parser_actions()
    assert set(actions) - MAGIC_ONLY == {name for name, (_, spec) in OPTIONS.items() if spec.flags}
    for name, (_, spec) in OPTIONS.items():
        flags = [flag for action in actions.get(name, []) for flag in action.option_strings]
        expected = list(spec.flags) + ([spec.kind.negative] if isinstance(spec.kind, Flag) and spec.kind.negative else [])
        assert sorted(flags) == sorted(expected), name
        assert actions[name][0].help == spec.help.replace("%", "%%"), name


def test_config_traits_match_the_declarations() -> None:
    traits = LLMBatch.class_traits(config=True)
    magics = LLMBatch(_Shell())
    for name, (default, spec) in OPTIONS.items():
        assert name in traits, name
        assert traits[name].help == spec.help, name
        assert getattr(magics, name) == default, name


def test_the_api_docstrings_list_every_option() -> None:
    for function in (nbtools.batch, nbtools.abatch, nbtools.start):
        for name, (default, spec) in OPTIONS.items():
            assert f"{name} = {default!r}: {spec.help}" in (function.__doc__ or ""), (function.__name__, name)


def test_the_readme_table_is_generated_from_the_declarations() -> None:
    readme = (ROOT / "README.md").read_text()
    assert options_table() in readme
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "options_table.py"), "--check"], capture_output=True)
    assert check.returncode == 0, check.stderr


def test_every_declared_option_is_checked_with_a_one_line_error() -> None:
    wrong = {"concurrency": 0, "repeat": 0, "temperature": 9, "max_tokens": 0, "params": [1], "stream": "yes",
             "timeout": 0, "retries": -1, "max_wait": 0, "rpm": 0, "tpm": -1, "cache": "no", "dedupe": 1,
             "price": "cheap", "max_cost": -1, "dry_run": "no", "via": "bulk", "poll_interval": 0, "job_size": 0,
             "model": "", "system": 5, "models": "one"}
    unchecked = {"provider", "base_url", "api_key_env"}  # resolve_endpoint checks these, without echoing them
    assert set(wrong) | unchecked == set(OPTIONS)
    for name, value in wrong.items():
        with pytest.raises(nbtools.ConfigError) as info:
            BatchOptions(**{name: value})
        assert name in str(info.value) and "\n" not in str(info.value), name
