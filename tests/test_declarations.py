"""Each option is declared once (nbtools/_base/options.py); everything that shows or takes an option agrees with it.

These fail when the magic's flags, the %config traits, the panel's controls, the API docstrings or the
docs' option table (docs/options.md) drift from the declarations, e.g. after an option was added or changed in one place only.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import nbtools
from nbtools._base.options import OPTIONS, BatchOptions, Flag, options_table
from nbtools._notebook.magic_flags import CELL_FLAGS
from nbtools._notebook.magics import LLMBatch

ROOT = Path(__file__).resolve().parent.parent
class _Shell:
    """Just enough of a shell for a Magics instance, to read its trait defaults."""

    configurables: list = []
    user_ns: dict = {}


MAGIC_ONLY = {flag.name for flag in CELL_FLAGS} | {"help"}  # the cell's own flags, declared in magics.py


def _parser_actions() -> dict[str, list]:
    by_dest: dict[str, list] = {}
    for action in LLMBatch.llm_batch.parser._actions:
        by_dest.setdefault(action.dest, []).append(action)
    return by_dest


def test_the_magic_takes_every_declared_flag_and_no_other() -> None:
    actions = _parser_actions()
    each = {f"{name}_each" for name, (_, spec) in OPTIONS.items() if spec.each}  # e.g. --check, repeatable
    assert set(actions) - MAGIC_ONLY - each == {name for name, (_, spec) in OPTIONS.items() if spec.flags}
    for name, (_, spec) in OPTIONS.items():
        if spec.each:
            assert [flag for action in actions[f"{name}_each"] for flag in action.option_strings] == [spec.each]
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


def test_the_docs_options_table_is_generated_from_the_declarations() -> None:
    page = (ROOT / "docs" / "options.md").read_text()
    assert options_table() in page
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "options_table.py"), "--check"], capture_output=True)
    assert check.returncode == 0, check.stderr


def test_every_declared_option_is_checked_with_a_one_line_error() -> None:
    wrong = {"concurrency": 0, "repeat": 0, "temperature": 9, "max_tokens": 0, "params": [1], "stream": "yes",
             "timeout": 0, "retries": -1, "max_wait": 0, "rpm": 0, "tpm": -1, "cache": "no", "dedupe": 1,
             "price": "cheap", "max_cost": -1, "dry_run": "no", "tier": "fast", "api": "foo", "via": "bulk",
             "poll_interval": 0, "job_size": 0, "prompt_cache_warmup": "yes", "prompt_cache_retention": "1h",
             "transport": "pigeon", "model": "", "system": 5, "schema": 3, "models": "one", "images": "a.png", "files": 5,
             "image_detail": "tiny", "on_bad_input": "ignore", "expected": "4", "checks": {"right": "nummber"},
             "judge": 3, "rubric": "{answer}", "judge_scale": "big"}
    unchecked = {"provider", "base_url", "api_key_env"}  # resolve_endpoint checks these, without echoing them
    assert set(wrong) | unchecked == set(OPTIONS)
    for name, value in wrong.items():
        with pytest.raises(nbtools.ConfigError) as info:
            BatchOptions(**{name: value})
        assert name in str(info.value) and "\n" not in str(info.value), name


# -- no second list of option names ---------------------------------------------------------------------
PACKAGE = ROOT / "nbtools"


ROW_FIELDS = {"expected", "checks", "judge"}  # a row's fields named after the options that fill them, not options


def _option_name_lists(package: Path = PACKAGE) -> list[str]:
    """Every tuple, list or set literal outside options.py that spells out three or more option names."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "_base" / "options.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in OPTIONS]
                row_fields = path == package / "_engine" / "rows.py" and set(names) <= ROW_FIELDS
                if len(names) >= 3 and not row_fields:
                    found.append(f"{path.relative_to(package)}:{node.lineno} {names}")
    return found


def test_no_module_keeps_its_own_list_of_option_names() -> None:
    # Which options resend() carries, which a Batch API job refuses, which the panel refuses: all are
    # attributes of the declarations (OptionSpec.resent, online_only, panel_takes), read where used.
    assert _option_name_lists() == []


def test_the_leak_check_finds_a_hand_written_list(tmp_path) -> None:
    (tmp_path / "_base").mkdir()
    (tmp_path / "_jobs.py").write_text('base = {k: 1 for k in ("model", "system", "temperature", "cache")}\n')
    (tmp_path / "_base" / "options.py").write_text('ONLINE_ONLY = ("stream", "rpm", "tpm")\n')  # the declarations' own
    assert _option_name_lists(tmp_path) == ["_jobs.py:1 ['model', 'system', 'temperature', 'cache']"]


def test_resend_carries_what_the_declarations_say() -> None:
    from nbtools._base.options import RESENT

    assert RESENT == tuple(name for name, (_, spec) in OPTIONS.items() if spec.resent)
    # How the first batch ran is not carried: resend() chooses its own engine, and its rows are already samples.
    assert not {"via", "repeat", "dry_run"} & set(RESENT)
    assert not {name for name, (_, spec) in OPTIONS.items() if spec.online_only} & set(RESENT)


# A value other than the default for every option, valid on its own.
OTHER = {"model": "gpt-4o-mini", "concurrency": 8, "repeat": 2, "system": "Be brief.", "temperature": 0.5,
         "max_tokens": 64, "params": {"seed": 1}, "stream": True, "timeout": 30.0, "retries": 1, "max_wait": 60.0,
         "rpm": 60.0, "tpm": 1000.0, "cache": False, "dedupe": True, "price": (0.1, 0.2), "max_cost": 1.0,
         "dry_run": True, "poll_interval": 1.0, "job_size": 10, "provider": "openai",
         "tier": "flex", "api": "chat", "schema": "score: int", "models": ["sim:sim-small", "sim:sim-large"],
         "base_url": "http://127.0.0.1:9/v1", "api_key_env": "SOME_KEY", "images": ["a.png"], "files": ["a.pdf"],
         "image_detail": "low", "on_bad_input": "skip", "expected": [4], "checks": {"right": "number"},
         "judge": "sim:sim-judge", "rubric": "Right? {reply}", "judge_scale": "pass/fail",
         "prompt_cache_warmup": True, "prompt_cache_retention": "24h",
         "transport": "aiohttp"}


def test_a_batch_api_job_refuses_exactly_the_options_declared_online_only() -> None:
    assert set(OTHER) | {"via"} == set(OPTIONS)
    for name, value in OTHER.items():
        refused = False
        try:
            BatchOptions(via="batch", **{name: value})
        except nbtools.ConfigError as exc:
            refused = f"{name} cannot be used with via='batch'" in str(exc)
        assert refused == OPTIONS[name][1].online_only, name


def test_llm_panel_refuses_exactly_the_flags_declared_not_for_the_panel(ip) -> None:
    from IPython.core.error import UsageError

    refused = {spec.flags[-1] for _, (_, spec) in OPTIONS.items() if not spec.panel_takes}
    refused |= {flag.flags[-1] for flag in CELL_FLAGS if not flag.panel_takes}
    assert {"--dry-run", "--background", "--compare", "--over", "--no-display"} == refused
    for flag in refused:
        line = f"{flag} xs" if flag == "--over" else flag
        with pytest.raises(UsageError, match=f"%llm_panel does not take {flag}:"):
            ip.run_line_magic("llm_panel", line)


def test_python_m_nbtools_takes_its_flags_and_help_from_the_declarations() -> None:
    from nbtools.__main__ import parser

    actions = {action.dest: action for action in parser()._actions if action.dest in OPTIONS}
    assert actions, "the demo takes no declared option"
    for name, action in actions.items():
        _, spec = OPTIONS[name]
        assert tuple(action.option_strings) == spec.flags, name
        assert (action.help or "").startswith(spec.help.replace("%", "%%")), name
    assert parser().parse_args(["-c", "auto"]).concurrency == "auto"  # read by the option's own kind


def test_the_cache_rule_is_written_once() -> None:
    # engine/cache.py's cache_is_on() decides; no other module reads the environment or the simulator for it.
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "_engine" / "cache.py":
            continue
        text = path.read_text()
        assert "enabled_by_default" not in text, path
        assert not any(".cache" in line and "simulated" in line for line in text.splitlines()), path


