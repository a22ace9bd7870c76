"""%%llm_batch in a real IPython shell (no kernel): parsing, templating, options, errors."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from nbtools._compare import Comparison
from nbtools._notebook.magics import transform_cell
from nbtools._result import BatchResult
from nbtools._several import MultiModelResult
from nbtools.sim import SimServer
from tests.support.helpers import one_line_usage_error, shown_html


@pytest.fixture
def cell(ip, sim: SimServer):
    """Run a %%llm_batch cell against the echoing simulator and return what -o stored."""
    ip.run_line_magic("config", f"LLMBatch.base_url = {sim.base_url!r}")
    ip.run_line_magic("config", "LLMBatch.model = 'm'")

    def run(line: str, body: str, out: str = "res") -> BatchResult:
        ip.user_ns.pop(out, None)
        ip.run_cell_magic("llm_batch", f"{line} -o {out}", body)
        return ip.user_ns[out]

    yield run
    ip.run_line_magic("config", "LLMBatch.base_url = None")
    ip.run_line_magic("config", "LLMBatch.model = None")
    ip.run_line_magic("config", "LLMBatch.concurrency = 16")


def test_each_line_is_a_prompt(cell) -> None:
    result = cell("", "first prompt\n\n  second prompt  \nthird\n")
    assert [r.text for r in result] == ["first prompt", "second prompt", "third"]
    assert result.done and all(r.ok for r in result)


def test_blocks_between_dashes_are_multiline_prompts(cell) -> None:
    result = cell("", "line one\nline two\n---\nsecond block\n---\n")
    assert [r.prompt for r in result] == ["line one\nline two", "second block"]


def test_templates_fill_from_the_namespace_and_keep_double_braces(ip, cell) -> None:
    ip.user_ns.update(topic="owls", info={"n": 3})
    result = cell("", "About {topic}: {info[n]} facts, as JSON {{\"k\": 1}}")
    assert result[0].text == 'About owls: 3 facts, as JSON {"k": 1}'


def test_over_runs_the_body_once_per_item(ip, cell) -> None:
    import pandas as pd

    ip.user_ns["cities"] = pd.Series(["Oslo", "Lima"])
    ip.user_ns["df"] = pd.DataFrame({"name": ["a", "b"], "size": [1, 2]})
    assert cell("--over cities", "Describe {item}\nin one line.").texts == ["Describe Oslo\nin one line.",
                                                                           "Describe Lima\nin one line."]
    assert cell("--over df", "{item.name} has size {item[size]}").texts == ["a has size 1", "b has size 2"]


def test_options_and_config_defaults(ip, cell, sim: SimServer) -> None:
    ip.run_line_magic("config", "LLMBatch.concurrency = 3")
    result = cell("-n 4", "a\nb")
    assert len(result) == 8 and sim.stats()["peak_in_flight"] == 3
    sim.reset()
    result = cell("-c 5 -s 'Be brief.' -t 0.3 --max-tokens 50 --params '{\"seed\": 1}' --retries 0 --timeout 5",
                  "x\ny\nz\nw\nv\nu")
    assert result.concurrency == 5 and result.options.system == "Be brief." and result.options.params == {"seed": 1}
    assert sim.stats()["peak_in_flight"] == 5


def test_config_lists_every_option(ip, capsys) -> None:
    ip.run_line_magic("config", "LLMBatch")
    out = capsys.readouterr().out
    for name in ("model", "concurrency", "repeat", "system", "temperature", "max_tokens", "stream", "timeout",
                 "retries", "params", "provider", "base_url", "api_key_env", "display_limit"):
        assert f"LLMBatch.{name}" in out


def test_help_documents_the_options() -> None:
    from nbtools._notebook.magics import LLMBatch

    doc = LLMBatch.llm_batch.__doc__
    for flag in ("--model", "--concurrency", "--repeat", "--out", "--stream", "--background", "--compare", "--over",
                 "--api-key-env", "--params"):
        assert flag in doc


def test_stream_and_compare(ip, cell) -> None:
    result = cell("--stream", "streamed reply")
    assert result[0].text == "streamed reply" and result[0].ttft is not None
    ip.run_cell_magic("llm_batch", "--compare -n 6 -c 6 -o cmp", "hello")
    comparison = ip.user_ns["cmp"]
    assert isinstance(comparison, Comparison)
    assert comparison.serial.summary().max_concurrency == 1 and comparison.concurrent.summary().max_concurrency == 6
    assert comparison.speedup > 2
    assert "faster" in shown_html(comparison) and "<svg" in shown_html(comparison)


@pytest.mark.parametrize(
    ("line", "body", "needle"),
    [
        ("--bogus", "x", "unknown option --bogus"),
        ("-c 0", "x", "concurrency=0"),
        ("-c many", "x", "concurrency='many' must be a whole number >= 1 or 'auto'"),
        ("", "   \n  ", "empty body"),
        ("", "hi {nobody}", "'nobody' is not defined"),
        ("", "a lone { brace", "literal braces"),
        ("--over missing", "{item}", "'missing' is not defined"),
        ("--over number", "{item}", "number is of type int"),
        ("--over word", "{item}", "not a list"),
        ("--params '{bad'", "x", "--params is not valid JSON"),
        ("--params '[1]'", "x", "must be a JSON object"),
        ("--provider nope", "x", "unknown provider 'nope'"),
        ("--provider openai --base-url ''", "x", "base_url"),
        ("--api-key-env NBTOOLS_TEST_UNSET_KEY", "x", "NBTOOLS_TEST_UNSET_KEY (api_key_env) is not set"),
        ("-o 2bad", "x", "not a valid variable name"),
        ("--background", "x", "--background needs a Jupyter kernel"),
        ("--background --compare", "x", "cannot be combined"),
        ("-t 9", "x", "temperature=9.0 is out of range"),
        ("-s Be brief.", "x", "quote values that have spaces"),
        ("-o class", "x", "not a valid variable name"),
        ("--base-url http://", "x", "not an http(s) URL with a host"),
        ("--stream --max-tokens 0", "x", "max_tokens=0 must be at least 1"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(ip, line: str, body: str, needle: str) -> None:
    ip.user_ns.update(number=5, word="abc")
    assert needle in one_line_usage_error(ip, "llm_batch", line, body)
    ip.run_cell("ok_after = 1")
    assert ip.user_ns["ok_after"] == 1


def test_missing_provider_key_is_a_usage_error(ip, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UsageError, match="OPENAI_API_KEY, which is not set"):
        ip.run_cell_magic("llm_batch", "--provider openai", "x")


def test_input_transformer_turns_the_cell_into_an_await() -> None:
    out = transform_cell(["%%llm_batch -c 2 -o r\n", "say 'hi'\n", "and \"bye\" {x}\n"])
    assert len(out) == 1 and out[0].startswith("await ")
    assert "run_cell('-c 2 -o r', 'say \\'hi\\'\\nand \"bye\" {x}\\n')" in out[0]
    for untouched in (["%%llm_batch?\n"], ["%%llm_batchy\n", "x\n"], ["print(1)\n"], ["%%time\n", "x\n"]):
        assert transform_cell(untouched) == untouched


def test_llm_panel_takes_the_same_options_for_its_initial_values(ip, sim: SimServer) -> None:
    panel = ip.run_line_magic("llm_panel", f'-c 8 -n 3 -s "Be brief." --params \'{{"seed": 1}}\' --base-url {sim.base_url} -o p')
    assert ip.user_ns["p"] is panel
    options = panel.options()
    assert (panel.concurrency.value, panel.repeat.value, panel.provider.value) == (8, 3, "custom")
    assert options["system"] == "Be brief." and options["params"] == {"seed": 1} and options["base_url"] == sim.base_url


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("--compare", "%llm_panel does not take --compare"),
        ("--background --over xs", "%llm_panel does not take --background, --over"),
        ("-o 1x", "not a valid variable name"),
        ("-c 0", "concurrency=0"),
        ("-c auto", "the panel's concurrency is a slider"),
    ],
)
def test_llm_panel_bad_input_is_a_one_line_usage_error(ip, line: str, needle: str) -> None:
    assert needle in one_line_usage_error(ip, "llm_panel", line)


def test_the_magic_reads_numbers_as_the_api_does(ip, sim: SimServer) -> None:
    ip.run_cell_magic("llm_batch", f"-c 4.0 --max-tokens 50.0 -n 2.0 --no-display -o same --base-url {sim.base_url} -m m", "x")
    result = ip.user_ns["same"]
    assert (result.options.concurrency, result.options.max_tokens, len(result)) == (4, 50, 2) and result[0].ok


def test_online_only_config_defaults_do_not_block_a_batch_job(ip, make_sim) -> None:
    server = make_sim(batch_delay=0.2, reply="echo")
    ip.run_line_magic("config", "LLMBatch.stream = True")
    try:
        ip.run_cell_magic("llm_batch", f"--via batch --wait --poll-interval 0.05 --no-display -o job "
                                       f"--base-url {server.base_url} -m sim-small", "hello")
    finally:
        ip.run_line_magic("config", "LLMBatch.stream = False")
    assert ip.user_ns["job"][0].text == "hello"
    with pytest.raises(UsageError, match="stream cannot be used with via='batch'"):  # said on the line: refused
        ip.run_cell_magic("llm_batch", f"--via batch --stream --base-url {server.base_url} -m sim-small", "hello")


def test_the_magic_takes_several_models_after_m(ip) -> None:
    ip.run_cell_magic("llm_batch", "-m sim:sim-small,sim:sim-tiny -o multi --no-display --cache", "one\ntwo")
    result = ip.user_ns["multi"]
    assert isinstance(result, MultiModelResult)
    assert result.labels == ["sim:sim-small", "sim:sim-tiny"] and len(result) == 4


def test_the_magic_runs_over_a_list_for_several_models_and_compares_them(ip, sim) -> None:
    ip.user_ns["topics"] = ["cats", "dogs", "owls"]
    ip.user_ns["sim_url"] = sim.base_url
    ip.run_cell_magic("llm_batch", "--base-url {sim_url} -m sim-mini,sim-pro --over topics -o side --no-display",
                      "Tell me about {item}.")
    side = ip.user_ns["side"]
    assert isinstance(side, MultiModelResult) and side.labels == ["sim-mini", "sim-pro"]
    assert list(side.wide()["prompt"]) == ["Tell me about cats.", "Tell me about dogs.", "Tell me about owls."]

    ip.run_cell_magic("llm_batch", "--base-url {sim_url} -m sim-mini,sim-pro --compare -o both --no-display -c 3",
                      "one\ntwo\nthree")
    both = ip.user_ns["both"]
    assert isinstance(both, Comparison)
    assert isinstance(both.serial, MultiModelResult) and both.serial.concurrency == 2  # 1 per model
    assert "measured" in repr(both) and both.speedup > 1
    assert list(both.by_model()) == ["sim-mini", "sim-pro"]
    assert "\n  sim-pro: serially " in repr(both)


def test_the_magic_shows_each_model_live_in_a_terminal(ip, sim, capsys) -> None:
    ip.user_ns["sim_url"] = sim.base_url
    ip.run_cell_magic("llm_batch", "--base-url {sim_url} -m sim-mini,sim-pro -o shown", "hello\nworld")
    err = capsys.readouterr().err
    assert "sim-mini: 2/2 done" in err and "sim-pro: 2/2 done" in err and "# | prompt | sim-mini | sim-pro" in err


def test_images_name_a_column_aligned_with_the_over_items(ip, cell) -> None:
    import pandas as pd

    from tests.support.images import png

    ip.user_ns["shots"] = pd.DataFrame({"name": ["a", "b"], "photo": [png(2, 2, (250, 0, 0)), png(3, 3, (0, 0, 250))]})
    result = cell("--over shots.name --images shots.photo --image-detail low", "Colour of {item}?")
    assert [r.text.split(".")[0] for r in result] == ["I see: image 2x2 px mostly red", "I see: image 3x3 px mostly blue"]
    assert result.options.image_detail == "low"
    message = one_line_usage_error(ip, "llm_batch", "--images nope", "x")
    assert message.startswith("--images nope: 'nope' is not defined")


def test_a_cell_run_again_with_other_options_says_which_and_the_manifest_hashes_its_template(ip, cell, capsys) -> None:
    ip.user_ns["topic"] = "otters"
    body = "Tell me about {topic}, first of its kind."
    first = cell("-t 0.2", body)
    assert "options changed" not in capsys.readouterr().out
    cell("-t 0.2", body)
    assert "options changed" not in capsys.readouterr().out  # the same options: nothing to say
    cell("-t 0.7", body)
    lines = [line for line in capsys.readouterr().out.splitlines() if "options changed" in line]
    assert lines == ["nbtools: options changed since this cell last ran in this kernel: temperature 0.2 -> 0.7"]
    assert first.manifest()["hashes"]["template"] is not None


def test_a_cell_run_again_with_a_series_of_answers_names_only_the_changed_setting(ip, cell, capsys) -> None:
    import pandas as pd

    ip.user_ns["answers"] = pd.Series(["4", "9"])
    cell("-t 0.2 --expected answers --check right=number", "2+2?\n3*3?")
    ip.user_ns["answers"] = pd.Series(["5", "9"])  # data, not a setting: the reply cache keys on it
    cell("-t 0.7 --expected answers --check right=number", "2+2?\n3*3?")
    lines = [line for line in capsys.readouterr().out.splitlines() if "options changed" in line]
    assert lines == ["nbtools: options changed since this cell last ran in this kernel: temperature 0.2 -> 0.7"]


def test_the_prompt_cache_flags(ip, cell) -> None:
    warmed = cell("--prompt-cache-warmup --prompt-cache-retention 24h", "a\nb\nc")
    assert warmed.options.prompt_cache_warmup is True and warmed.warmed_up
    assert warmed.options.prompt_cache_retention == "24h"
    cold = cell("--no-prompt-cache-warmup", "a\nb\nc")
    assert cold.options.prompt_cache_warmup is False and not cold.warmed_up
    message = one_line_usage_error(ip, "llm_batch", "--prompt-cache-retention 1h", "a")
    assert "prompt_cache_retention" in message and "24h" in message
