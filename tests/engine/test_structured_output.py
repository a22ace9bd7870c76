"""schema=: replies become validated fields and DataFrame columns, against servers that enforce each
provider's structured-output rules (tests/structured_servers.py) and the simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Optional

import pandas as pd
import pytest
from pydantic import BaseModel, Field

import nbtools
from nbtools._base.errors import ConfigError
from nbtools._base.schemas import to_schema
from nbtools._engine import wire
from nbtools._engine.wire import JSON_OBJECT, JSON_SCHEMA, STRICT, SYSTEM
from tests.support.batch_servers import AnthropicBatchServer, OpenAIBatchServer, serving_batches
from tests.support.helpers import serve_app, shown_html
from tests.support.structured_servers import MISSING_FIELD, StructuredServer


class Review(BaseModel):
    sentiment: Literal["positive", "negative", "mixed"]
    score: int
    reasons: list[str]
    note: Optional[str] = None  # optional: strict mode wants it required and nullable


class Place(BaseModel):
    city: str
    lat: float


class Visit(BaseModel):
    place: Place  # nested: columns place.city, place.lat
    liked: bool


PLAIN = {"type": "object", "properties": {"label": {"type": "string", "enum": ["spam", "ham"]},
                                          "confidence": {"type": "number"}}, "required": ["label"]}


@pytest.fixture
def served(monkeypatch):
    """``served(rules)``: a StructuredServer with those rules, and the options that point a batch at it."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-structured")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-structured")
    stack = []

    def start(rules: str, provider: str | None = None) -> tuple[StructuredServer, dict]:
        server = StructuredServer(rules)
        context = serve_app(server.app())
        url = context.__enter__()
        stack.append(context)
        options = {"base_url": url + "/v1", "model": "m", "cache": False, "retries": 0}
        if provider:
            options["provider"] = provider
        return server, options

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


# -- the option ------------------------------------------------------------------------------------
def test_a_model_with_an_optional_field_a_literal_and_a_list_is_made_strict() -> None:
    strict = wire.strict(to_schema(Review))
    assert strict["additionalProperties"] is False
    assert strict["required"] == ["sentiment", "score", "reasons", "note"]
    assert {"type": "null"} in strict["properties"]["note"]["anyOf"]
    assert "default" not in json.dumps(strict)
    nested = wire.strict(to_schema(Visit))["$defs"]["Place"]
    assert nested["additionalProperties"] is False and nested["required"] == ["city", "lat"]


def test_the_short_form_declares_choices_numbers_lists_and_optional_fields() -> None:
    schema = to_schema("sentiment: positive|negative|mixed, score: int, reasons: list[str], note: str?")
    assert [(c.name, c.dtype) for c in schema.columns] == [
        ("sentiment", "category"), ("score", "Int64"), ("reasons", "object"), ("note", "string")]
    assert schema.json_schema["required"] == ["sentiment", "score", "reasons"]
    assert schema.validate('{"sentiment": "mixed", "score": 2, "reasons": []}')["note"] is None


@pytest.mark.parametrize("bad", [3, "score", "score: decimal", {"type": "string"},
                                 Review(sentiment="mixed", score=1, reasons=[])])
def test_a_schema_that_is_neither_a_model_a_dict_nor_the_short_form_is_one_clear_line(bad) -> None:
    with pytest.raises(ConfigError) as caught:
        nbtools.batch(["x"], schema=bad)
    assert "\n" not in str(caught.value) and "schema" in str(caught.value)


# -- each endpoint asked its way -------------------------------------------------------------------
@pytest.mark.parametrize("schema", [Review, PLAIN], ids=["pydantic", "dict"])
def test_openai_strict_mode_accepts_the_schema_as_sent(served, schema) -> None:
    server, options = served("openai", "openai")
    result = nbtools.batch(["I love it", "It broke"], schema=schema, **options)
    assert server.refused == 0 and all(r.ok for r in result), [r.error for r in result]
    rf = server.bodies[0]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert all(isinstance(r.data, dict) for r in result)
    assert result.schema_form == STRICT and "schema asked as json_schema strict" in str(result.summary())


def test_the_strict_server_refuses_a_schema_that_is_not_strict_with_openais_400(served) -> None:
    """The fixture enforces the rule: a raw schema in params, not made strict, is refused as OpenAI does."""
    server, options = served("openai", "openai")
    raw = {"type": "json_schema", "json_schema": {"name": "NAME", "strict": True, "schema": PLAIN}}
    with pytest.raises(nbtools.EndpointError) as stopped:  # a field every row sends: the batch stops at once
        nbtools.batch(["x"], params={"response_format": raw}, **options)
    assert "leave 'response_format' out of params=" in str(stopped.value)
    row = stopped.value.result.rows[0]  # type: ignore[union-attr]
    assert row.error_kind == "parameter" and row.status_code == 400
    assert ("Invalid schema for response_format 'NAME': In context=(), 'additionalProperties' is required to be "
            "supplied and to be false.") in (row.error or "")


def test_vllm_gets_a_plain_json_schema(served) -> None:
    server, options = served("vllm", "vllm")
    result = nbtools.batch(["a"], schema=Review, **options)
    rf = server.bodies[0]["response_format"]
    assert rf["type"] == "json_schema" and "strict" not in rf["json_schema"]
    assert result.schema_form == JSON_SCHEMA and result[0].data["score"] == 1


@pytest.mark.parametrize("rules", ["llama-cpp-python", "llama.cpp-old"])
def test_a_server_of_the_older_dialect_is_asked_again_once_per_batch(served, rules) -> None:
    server, options = served(rules)
    result = nbtools.batch([f"item {i}" for i in range(5)], schema=Review, concurrency=1, **options)
    assert all(r.ok for r in result), [r.error for r in result]
    assert server.refused == 1 and len(server.bodies) == 6  # one refusal, then every request the old way
    assert [b["response_format"]["type"] for b in server.bodies] == ["json_schema"] + ["json_object"] * 5
    assert server.bodies[-1]["response_format"]["schema"] == to_schema(Review).json_schema
    assert result.schema_form == JSON_OBJECT and "json_object + schema" in str(result.summary())


def test_anthropics_compatible_endpoint_gets_the_schema_in_the_system_message(served) -> None:
    server, options = served("anthropic", "anthropic")
    result = nbtools.batch(["a"], schema=Review, system="Be terse.", **options)
    body = server.bodies[0]
    assert "response_format" not in body
    assert body["messages"][0]["role"] == "system" and body["messages"][0]["content"].startswith("Be terse.")
    assert '"sentiment"' in body["messages"][0]["content"]
    assert result[0].data == {"sentiment": "positive", "score": 1, "reasons": ["a"], "note": "a"}
    assert result.schema_form == SYSTEM


# -- rows, retries, columns ------------------------------------------------------------------------
def test_rows_missing_a_required_field_are_invalid_and_retry_invalid_sends_exactly_those(served) -> None:
    server, options = served("openai", "openai")
    prompts = ["fine", f"bad {MISSING_FIELD}", "good", f"worse {MISSING_FIELD}"]
    result = nbtools.batch(prompts, schema=Review, price=(1.0, 1.0), **options)
    assert [r.error_kind for r in result] == [None, "invalid_output", None, "invalid_output"]
    bad = result[1]
    assert "sentiment" in bad.error and "Field required" in bad.error and bad.data is None
    assert json.loads(bad.text)["score"] == len(prompts[1])  # the raw reply is kept
    assert len(result) == 4 and result.summary().invalid == 2 and "2 invalid" in str(result.summary())
    cost_before = result.summary().cost

    server.bodies.clear()
    result.retry_invalid()
    assert len(server.bodies) == 2  # exactly the two invalid rows, no others
    for body, row_prompt in zip(server.bodies, (prompts[1], prompts[3]), strict=True):
        assert body["messages"][0]["content"] == row_prompt
        assert body["messages"][1]["role"] == "assistant"
        assert "Field required" in body["messages"][2]["content"]
    assert all(r.ok for r in result) and result[1].data["sentiment"] == "positive"  # filled in place
    assert result.summary().invalid == 0 and result.summary().errors == 0
    assert result[1].attempts == 2 and result[0].attempts == 1
    assert result.summary().cost > cost_before  # the cost includes the retries


def test_retry_invalid_fills_rows_in_place_once_they_validate(make_any_sim) -> None:
    sim = make_any_sim(latency=0.01)
    result = nbtools.batch(["great product", "awful [[sim:invalid]]"], schema=Review, base_url=sim.base_url, model="m")
    assert result[1].error_kind == "invalid_output"
    asyncio_result = result.retry_invalid()
    assert asyncio_result is result and all(r.ok for r in result)
    assert set(result[1].data) == {"sentiment", "score", "reasons", "note"}


def test_refusals_and_cut_replies_are_kinds_of_their_own(make_any_sim) -> None:
    sim = make_any_sim(latency=0.01)
    result = nbtools.batch(["no [[sim:refuse]]", "fine"], schema=Review, base_url=sim.base_url, model="m")
    assert result[0].error_kind == "refusal" and result[0].text and result[1].ok
    cut = nbtools.batch(["fine"], schema=Review, base_url=sim.base_url, model="m", max_tokens=2)
    assert cut[0].error_kind == "length" and cut[0].text


def test_columns_use_nullable_dtypes_and_join_keeps_the_frames_index(served) -> None:
    server, options = served("openai", "openai")
    frame = pd.DataFrame({"review": ["one", f"two {MISSING_FIELD}", "three"]}, index=["a", "b", "c"])
    result = nbtools.batch(list(frame["review"]), schema=Review, **options)
    table = result.to_pandas()
    assert str(table["sentiment"].dtype) == "category"
    assert list(table["sentiment"].cat.categories) == ["positive", "negative", "mixed"]
    assert str(table["score"].dtype) == "Int64" and str(table["note"].dtype) == "string"
    assert table["reasons"].iloc[0] == ["one"] and table["score"].isna().tolist() == [False, True, False]
    joined = result.join(frame)
    assert list(joined.index) == ["a", "b", "c"] and joined.loc["c", "score"] == 5
    assert list(joined.columns) == ["review", "sentiment", "score", "reasons", "note"]
    visits = nbtools.batch(["x"], schema=Visit, **options).to_pandas()
    assert str(visits["place.lat"].dtype) == "Float64" and str(visits["liked"].dtype) == "boolean"
    assert visits.loc[0, "place.city"] == "x"


def test_a_field_that_clashes_with_a_column_is_one_clear_line(served) -> None:
    server, options = served("openai", "openai")
    clash = nbtools.batch(["x"], schema="text: str, n: int", **options)
    with pytest.raises(ConfigError, match="field 'text' clashes with the column 'text'"):
        clash.to_pandas()
    result = nbtools.batch(["x"], schema="review: str", **options)
    with pytest.raises(ConfigError, match="field 'review' clashes"):
        result.join(pd.DataFrame({"review": ["x"]}))


def test_jsonl_keeps_data(served, tmp_path) -> None:
    server, options = served("openai", "openai")
    result = nbtools.batch(["x"], schema=PLAIN, **options)
    result.to_jsonl(tmp_path / "out.jsonl")
    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert line["data"] == {"label": "spam", "confidence": 0.5}


@contextmanager
def online_and_via_batch(served, monkeypatch, batch_server: OpenAIBatchServer | AnthropicBatchServer, provider: str,
                         model: str, prompts: list[str]) -> Iterator[tuple[pd.DataFrame, nbtools.BatchResult]]:
    """``prompts`` with schema=Review online (OpenAI's rules), then through ``batch_server``, the Batch API of
    ``provider``: yields the online rows as a frame and the batch's result, while ``batch_server`` serves."""
    _, options = served("openai", "openai")
    online = nbtools.batch(prompts, schema=Review, **options).to_pandas()
    with serving_batches(batch_server, monkeypatch, f"{provider.upper()}_API_KEY") as url:
        yield online, nbtools.batch(prompts, schema=Review, via="batch", provider=provider, base_url=url, model=model,
                                    poll_interval=0.01)


def test_the_batch_api_gives_the_same_columns_as_online(monkeypatch, served) -> None:
    batch_server = OpenAIBatchServer()
    prompts = ["one", "two", f"three {MISSING_FIELD}"]
    with online_and_via_batch(served, monkeypatch, batch_server, "openai", "m", prompts) as (online, result):
        line = json.loads(batch_server.files[next(iter(batch_server.files))].decode().splitlines()[0])
        assert line["body"]["response_format"]["json_schema"]["strict"] is True
        fields = ["sentiment", "score", "reasons", "note", "error_kind"]
        pd.testing.assert_frame_equal(result.to_pandas()[fields], online[fields])
        assert result.schema_form == STRICT and result.summary().invalid == 1
        result.retry_invalid()  # a new Batch API job for the invalid row only
        assert batch_server.creates == 2 and result[2].attempts == 2


# -- everywhere else -------------------------------------------------------------------------------
def test_the_cache_key_includes_the_schema(served) -> None:
    server, options = served("openai", "openai")
    options["cache"] = True
    nbtools.batch(["same"], schema=Review, **options)
    again = nbtools.batch(["same"], schema=Review, **options)
    other = nbtools.batch(["same"], schema=PLAIN, **options)
    assert again[0].cached and not other[0].cached and len(server.bodies) == 2
    assert other[0].data == {"label": "spam", "confidence": 0.5}


def test_the_dry_run_counts_the_schemas_tokens() -> None:
    plain = nbtools.dry_run(["hello"], provider="openai", model="gpt-4o-mini")
    typed = nbtools.dry_run(["hello"], provider="openai", model="gpt-4o-mini", schema=Review)
    assert typed.rows[0].prompt_tokens > plain.rows[0].prompt_tokens + 20


def test_the_simulator_refuses_a_schema_that_is_not_strict_like_openai(make_sim) -> None:
    sim = make_sim(latency=0.01)
    raw = {"type": "json_schema", "json_schema": {"name": "r", "strict": True,
                                                  "schema": {**PLAIN, "additionalProperties": False}}}
    with pytest.raises(nbtools.EndpointError) as stopped:
        nbtools.batch(["x"], params={"response_format": raw}, base_url=sim.base_url, model="m")
    row = stopped.value.result.rows[0]  # type: ignore[union-attr]
    assert row.status_code == 400
    assert ("In context=(), 'required' is required to be supplied and to be an array including every key in "
            "properties. Missing 'confidence'.") in (row.error or "")


def test_the_simulators_shares_of_invalid_answers_and_refusals(make_sim) -> None:
    sim = make_sim(latency=0.0, invalid_output=0.3, refusal=0.1)
    result = nbtools.batch([f"review {i}: great" for i in range(200)], schema=Review, base_url=sim.base_url,
                           model="m", concurrency=50)
    kinds = result.summary().error_kinds
    assert 30 <= kinds["invalid_output"] <= 90 and 5 <= kinds["refusal"] <= 40
    assert all(r.data["score"] in range(1, 6) for r in result if r.ok)  # a score looks like a score


def test_magic_schema_names_a_variable_or_is_the_short_form_and_over_takes_a_column(ip, make_sim) -> None:
    from IPython.core.error import UsageError

    sim = make_sim(latency=0.01)
    ip.user_ns["Review"] = Review
    ip.user_ns["reviews"] = pd.DataFrame({"review": ["great", "bad"]}, index=[7, 9])
    line = f"--base-url {sim.base_url} -m m --no-display"
    for over in ("reviews.review", 'reviews["review"]'):
        ip.run_cell_magic("llm_batch", f"{line} --schema Review --over {over} -o res", "Rate: {item}")
        result = ip.user_ns["res"]
        assert [r.prompt for r in result] == ["Rate: great", "Rate: bad"] and all(r.ok for r in result)
        assert list(result.join(ip.user_ns["reviews"]).index) == [7, 9]
    ip.run_cell_magic("llm_batch", f"{line} --schema 'label: good|bad, n: int' -o res", "x")
    assert set(ip.user_ns["res"][0].data) == {"label", "n"}
    with pytest.raises(UsageError, match="--schema Nope: 'Nope' is not defined"):
        ip.run_cell_magic("llm_batch", f"{line} --schema Nope", "x")
    with pytest.raises(UsageError, match="has no column 'nope'"):
        ip.run_cell_magic("llm_batch", f"{line} --over reviews.nope", "{item}")


def test_the_table_shows_a_column_per_field_and_escapes_their_values(served) -> None:
    server, options = served("openai", "openai")
    result = nbtools.batch(["<img src=x onerror=alert(1)>", f"y {MISSING_FIELD}"], schema=Review, **options)
    html = shown_html(result)
    assert "<th>sentiment</th><th>score</th><th>reasons</th><th>note</th>" in html and "<th>response</th>" not in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "schema Review (4 fields) asked as json_schema strict" in html
    assert "<th>invalid</th>" in html and "1 invalid (result.retry_invalid() asks those again)" in html
    text = repr(result)
    assert "# | prompt | sentiment | score | reasons | note | latency" in text
    assert "the reply does not match the schema: sentiment: Field required" in text


def test_anthropics_batch_api_is_asked_by_tool_use_and_gives_the_same_columns(monkeypatch, served) -> None:
    batch_server = AnthropicBatchServer()
    prompts = ["one", "two"]
    with online_and_via_batch(served, monkeypatch, batch_server, "anthropic", "claude-haiku-4-5", prompts) as (online, result):
        params = next(iter(batch_server.batches.values()))["_requests"][0]["params"]
        assert params["tool_choice"] == {"type": "tool", "name": "Review"}
        assert params["tools"][0]["input_schema"]["properties"]["sentiment"]["enum"] == ["positive", "negative", "mixed"]
        fields = ["sentiment", "score", "reasons", "note"]
        pd.testing.assert_frame_equal(result.to_pandas()[fields], online[fields])
        assert result.schema_form == "tool use"


def test_the_simulators_anthropic_batches_answer_a_forced_tool_call(make_sim) -> None:
    sim = make_sim(latency=0.0, batch_delay=0.1)
    result = nbtools.batch(["great", "bad [[sim:invalid]]"], schema=Review, via="batch", provider="anthropic",
                           base_url=sim.base_url, model="sim-small", poll_interval=0.05)
    assert result[0].ok and set(result[0].data) == {"sentiment", "score", "reasons", "note"}
    assert result[1].error_kind == "invalid_output"


def test_streamed_replies_are_validated_and_aretry_invalid_awaits(make_sim) -> None:
    import asyncio

    sim = make_sim(latency=0.01)
    result = nbtools.batch(["good", "bad [[sim:invalid]]", "no [[sim:refuse]]"], schema=Review, stream=True,
                           base_url=sim.base_url, model="m")
    assert [r.error_kind for r in result] == [None, "invalid_output", "refusal"] and result[0].data is not None

    async def again() -> nbtools.BatchResult:
        return await result.aretry_invalid()

    assert asyncio.run(again()) is result and result[1].ok and result[2].error_kind == "refusal"


def test_a_strict_request_that_is_refused_is_not_asked_again_the_old_way(served) -> None:
    """Only plain json_schema requests fall back: a strict endpoint's 4xx says what is wrong, and stays."""
    server, options = served("llama-cpp-python", "openai")
    result = nbtools.batch(["a", "b"], schema=Review, concurrency=1, **options)
    assert [r.status_code for r in result] == [422, 422] and server.refused == 2
    assert all(b["response_format"]["type"] == "json_schema" for b in server.bodies)
    assert result.schema_form == STRICT


class Node(BaseModel):
    name: str
    parent: Optional["Node"] = None
    children: list["Node"] = []


class Aliased(BaseModel):
    model_config = {"populate_by_name": True}
    text_: str = Field(alias="reply_text")


def test_a_model_that_holds_itself_and_an_aliased_field(make_sim) -> None:
    sim = make_sim(latency=0.01)
    result = nbtools.batch(["tree"], schema=Node, base_url=sim.base_url, model="m")
    assert result[0].ok, result[0].error
    assert [c.name for c in to_schema(Node).columns] == ["name", "parent", "children"]
    aliased = nbtools.batch(["x"], schema=Aliased, base_url=sim.base_url, model="m")
    assert set(aliased[0].data) == {"reply_text"} and "reply_text" in aliased.to_pandas().columns


def test_the_live_table_shows_fields_while_rows_arrive(make_sim) -> None:
    import asyncio

    from tests.support.helpers import until

    sim = make_sim(latency=0.01)

    async def run() -> None:
        prompts = ["great"] + [f"slow one {i} [[sim:latency=5]]" for i in range(3)]
        result = nbtools.start(prompts, schema=Review, base_url=sim.base_url, model="m")
        await until(lambda: result[0].done, what="the fast row")
        live = result.live_view().body(20)["text/html"]
        assert not result.done and "<th>sentiment</th>" in live
        assert f"<td>{result[0].data['sentiment']}</td>" in live  # a finished row's field, while others run
        result.cancel()
        await result.aclose()

    asyncio.run(run())


def test_the_responses_api_form_carries_the_same_strict_schema() -> None:
    schema = to_schema(Review)
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": wire.response_format(schema, STRICT)}
    sent = wire.responses_body(chat)["text"]["format"]
    assert sent == {"type": "json_schema", "name": schema.name, "strict": True, "schema": wire.strict(schema)}
