"""Reference answers and checks (``expected=``, ``checks=``), against an independent server whose models answer sums
right or wrong in a known pattern (tests/support/sums_server.py): the pass rates are the server's, per model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import nbtools
from tests.support.helpers import one_line_usage_error
from tests.support.sums_server import sum_models

PROMPTS = [f"What is {a} + {a + 3}?" for a in range(10)]  # half of them start with an odd number
SUMS = [a + a + 3 for a in range(10)]


def test_number_and_a_callable_check_give_the_known_pass_rates_per_model(sums) -> None:
    server, url = sums

    def says_sum(row: nbtools.RequestResult) -> bool:
        return str(row.expected) in (row.text or "")

    def breaks_on_seven(row: nbtools.RequestResult) -> float:
        if row.expected == 17:
            raise ValueError("seven")
        return len(row.text or "") / 100

    result = nbtools.batch(PROMPTS, models=sum_models(url), expected=SUMS,
                           checks={"right": "number", "says": says_sum, "size": breaks_on_seven, "has": "regex:answer"})

    rates = {label: {f.name: f.value for f in part.summary().checks} for label, part in result.by_model.items()}
    assert rates["right"]["right"] == rates["right"]["says"] == 1.0
    assert rates["odd-wrong"]["right"] == rates["odd-wrong"]["says"] == 0.5
    assert rates["right"]["has"] == rates["odd-wrong"]["has"] == 1.0
    assert result.summary().checks[0].value == 0.75 and result.summary().checks[0].graded == 20
    frame = result.to_pandas()
    assert str(frame["check.right"].dtype) == "boolean" and str(frame["check.size"].dtype) == "Float64"
    assert list(frame["expected"][frame["label"] == "right"]) == SUMS
    wrong = frame[frame["label"] == "odd-wrong"]
    assert list(wrong["check.right"]) == [a % 2 == 0 for a in range(10)]
    # The check that raised on prompt 7 left that row's other checks and every other row in place.
    broken = frame[frame.index == 7]
    assert broken["check.size"].isna().all() and broken["check.right"].notna().all()
    assert broken["check_error"].str.contains("size: ValueError: seven").all()
    assert frame["check.size"].notna().sum() == 18 and frame["check_error"].notna().sum() == 2
    assert result[14].checks == {"right": True, "says": True, "size": result[14].checks["size"], "has": True}
    text = str(result.by_model["odd-wrong"].summary())
    assert "checks: right 50% of 10, says 50% of 10" in text and "where a check raised" in text
    shown = result._view().text()
    assert "odd-wrong: 10/10 done" in shown and "checks: right 50% of 10" in shown and "right ✗" in shown


def test_a_row_without_a_reference_has_no_check_values(sums, tmp_path) -> None:
    _, url = sums
    result = nbtools.batch(["What is 1 + 2?", "What is 2 + 2?"], base_url=url, model="right", expected=[3, None],
                           checks={"right": "number", "exact": "exact", "in": "contains"})
    frame = result.to_pandas()
    assert frame["check.right"].isna().tolist() == [False, True] and bool(frame["check.right"].iloc[0])
    assert not frame["check.exact"].iloc[0] and bool(frame["check.in"].iloc[0])
    assert result.summary().checks[0].graded == 1
    result.to_jsonl(tmp_path / "rows.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [(line["expected"], line["checks"]["right"]) for line in lines] == [(3, True), (None, None)]


@pytest.mark.parametrize(("options", "needle"), [
    ({"checks": {"right": "numbr"}}, "is not a built-in check: choose one of exact, contains, number, json"),
    ({"checks": {"right": 3}}, "is not a check: give a built-in's name"),
    ({"checks": {"bad": "regex:("}}, "the pattern does not compile"),
    ({"checks": {}}, "must be a non-empty dict"),
    ({"expected": [1, 2]}, "expected= has 2 values for 3 prompts"),
    ({"expected": "123"}, "must be a list (or pandas Series)"),
])
def test_bad_checks_and_references_are_one_line_errors_before_any_request(sums, options, needle) -> None:
    server, url = sums
    with pytest.raises(nbtools.ConfigError) as info:
        nbtools.batch(["What is 1 + 1?"] * 3, base_url=url, model="right", **options)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert server.calls == {}


def test_the_magic_takes_expected_and_checks_by_name(ip, sums) -> None:
    server, url = sums
    ip.user_ns["answers"] = pd.Series(SUMS[:4])
    ip.user_ns["mine"] = {"says": lambda row: str(row.expected) in row.text}
    ip.user_ns["frame"] = pd.DataFrame({"a": range(4), "answer": SUMS[:4]})
    ip.run_cell_magic("llm_batch", f"--base-url {url} -m odd-wrong --expected answers --check right=number "
                      "--check has=regex:answer --checks mine --no-display -o r", "\n".join(PROMPTS[:4]))
    result = ip.user_ns["r"]
    assert [row.checks for row in result] == [
        {"says": ok, "right": ok, "has": True} for ok in (True, False, True, False)]
    # A column of the --over frame, by its name.
    ip.run_cell_magic("llm_batch", f"--base-url {url} -m right --over frame --expected answer --check right=number "
                      "--no-display -o r2", "What is {item.a} + 3?")
    assert [row.expected for row in ip.user_ns["r2"]] == SUMS[:4]
    message = one_line_usage_error(ip, "llm_batch", f"--base-url {url} -m right --check right", "x")
    assert "--check 'right' must be NAME=CHECK" in message
    message = one_line_usage_error(ip, "llm_batch", f"--base-url {url} -m right --expected nowhere", "x")
    assert "--expected nowhere: 'nowhere' is not defined" in message
