"""images= and files=: what arrives at a server that decodes every part, each API's own shape, the Batch API's
lines and split, the cost of images before a run, bad input caught before any request, and the reply cache."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest
from aiohttp import web

import nbtools
from nbtools._base.attachments import load, pixel_size, sniff
from nbtools._base.options import options_from
from nbtools._engine.batchapi.requests import ANTHROPIC, build_parts
from nbtools._engine.endpoints import resolve_endpoint
from nbtools._engine.launch import prepare_one
from nbtools._engine.state import BatchState
from nbtools._engine.wire import Dialect
from tests.support.helpers import serve_app, serve_post
from tests.support.images import GIF, jpeg, png, png_header

PDF = b"%PDF-1.4\n1 0 obj <</Type /Page>> endobj\n2 0 obj <</Type /Pages>> endobj\n%%EOF\n"


def reply(text: str = "ok") -> dict:
    return {"model": "m", "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


def decoded_parts(body: dict) -> list[tuple[str, object]]:
    """What an independent chat server reads off the last user message: each part decoded."""
    found: list[tuple[str, object]] = []
    for part in body["messages"][-1]["content"]:
        if part["type"] == "text":
            found.append(("text", part["text"]))
        elif part["type"] == "image_url":
            url = part["image_url"]["url"]
            if url.startswith("data:"):
                head, data = url.split(",", 1)
                found.append((head[5:].removesuffix(";base64"), base64.b64decode(data, validate=True)))
            else:
                found.append(("url", url))
        elif part["type"] == "file":
            head, data = part["file"]["file_data"].split(",", 1)
            found.append(("file " + head[5:].removesuffix(";base64"), base64.b64decode(data, validate=True)))
        else:
            raise AssertionError(f"a part chat does not take: {part}")
    return found


def test_every_image_arrives_as_the_bytes_on_disk_with_its_media_type(tmp_path: Path) -> None:
    photo, scan = tmp_path / "photo.jpg.png", tmp_path / "scan.pdf"  # the name says jpg: the bytes say png
    photo.write_bytes(png(3, 2))
    scan.write_bytes(PDF)
    seen: list[dict] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response(reply())

    with serve_post("/v1/chat/completions", chat) as url:
        result = nbtools.batch(["a", "b", "c"], base_url=url + "/v1", model="m", cache=False, concurrency=1,
                               images=[str(photo), [jpeg(640, 480), GIF], "https://example.com/cat.webp"],
                               files=[str(scan), None, None], image_detail="low")
    assert [r.status for r in result] == ["ok"] * 3
    by_text = {decoded_parts(b)[0][1]: decoded_parts(b) for b in seen}
    assert by_text["a"][1:] == [("image/png", photo.read_bytes()), ("file application/pdf", PDF)]
    assert by_text["b"][1:] == [("image/jpeg", jpeg(640, 480)), ("image/gif", GIF)]
    assert by_text["c"][1:] == [("url", "https://example.com/cat.webp")]  # a URL goes as it is
    assert all(p["image_url"]["detail"] == "low" for b in seen for p in b["messages"][-1]["content"]
               if p["type"] == "image_url")
    exported = result.to_pandas()
    assert list(exported["images"]) == [[str(photo), str(scan)], [load(jpeg(640, 480), "image").name,
                                        load(GIF, "image").name], ["https://example.com/cat.webp"]]
    assert list(exported["prompt"]) == ["a", "b", "c"]
    out = tmp_path / "rows.jsonl"
    result.to_jsonl(out)
    assert base64.b64encode(photo.read_bytes()).decode() not in out.read_text()
    assert json.loads(out.read_text().splitlines()[0])["images"] == [str(photo), str(scan)]


def test_header_sizes_and_media_types_are_read_without_decoding() -> None:
    assert sniff(png_header(1, 1)) == "image/png" and pixel_size(png_header(4000, 3000), "image/png") == (4000, 3000)
    assert pixel_size(jpeg(640, 480), "image/jpeg") == (640, 480)
    assert pixel_size(GIF, "image/gif") == (7, 5)
    webp = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (99).to_bytes(3, "little") + (49).to_bytes(3, "little")
    assert sniff(webp) == "image/webp" and pixel_size(webp, "image/webp") == (100, 50)
    lossy = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 4 + b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", 320, 200)
    assert pixel_size(lossy, "image/webp") == (320, 200)
    lossless = b"RIFF\x00\x00\x00\x00WEBPVP8L" + b"\x00" * 4 + b"\x2f" + (((40 - 1) | ((30 - 1) << 14))).to_bytes(4, "little")
    assert pixel_size(lossless, "image/webp") == (40, 30)


def test_a_pil_image_goes_as_the_png_it_saves() -> None:
    image_module = pytest.importorskip("PIL.Image")
    picture = image_module.new("RGB", (9, 4), (250, 0, 0))
    row = nbtools.batch(["what is it?"], images=[picture], provider="sim")[0]
    assert row.text.startswith("I see: image 9x4 px mostly red")


def test_each_api_gets_its_own_parts_and_the_simulator_refuses_the_others_with_the_real_body() -> None:
    image = png(4, 4, (20, 40, 220))
    for api in ("chat", "responses"):
        result = nbtools.batch(["which colour?"], images=[image], api=api, provider="sim")
        assert result[0].ok and result[0].text.startswith("I see: image 4x4 px mostly blue"), result[0].error
    wrong = [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA",
                                           "detail": "auto"}]}]
    row = nbtools.batch([wrong], provider="sim", retries=0)[0]
    assert row.status_code == 400 and "Invalid value: 'input_image'. Supported values are: 'text', 'image_url'" in row.error
    mislabelled = [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(jpeg(8, 8)).decode()}}]}]
    row = nbtools.batch([mislabelled], provider="sim", retries=0)[0]
    assert row.status_code == 400 and "You uploaded an unsupported image" in row.error


def test_anthropic_batch_lines_carry_image_and_document_blocks(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(png(5, 5))
    state = prepare_one(["look"], BatchState, api_key="k", provider="anthropic", model="claude-x", via="batch",
                        images=[[str(photo), "https://example.com/x.gif"]], files=[PDF])
    parts = build_parts(state.rows, state.options, "claude-x", ANTHROPIC, Dialect(state.endpoint))
    blocks = json.loads(parts[0].lines[0])["params"]["messages"][-1]["content"]
    assert blocks[0] == {"type": "text", "text": "look"}
    assert blocks[1]["source"]["media_type"] == "image/png"
    assert base64.b64decode(blocks[1]["source"]["data"]) == photo.read_bytes()
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/x.gif"}}
    assert blocks[3]["type"] == "document" and base64.b64decode(blocks[3]["source"]["data"]) == PDF


def test_a_batch_job_is_split_under_a_byte_limit_with_every_row_in_order() -> None:
    images = [png(30 + i, 30, (i * 20, 0, 0)) for i in range(9)]
    state = prepare_one([f"row {i}" for i in range(9)], BatchState, images=images, via="batch", provider="sim")
    endpoint = state.endpoint
    one = len(build_parts(state.rows[:1], state.options, "sim-small", ANTHROPIC, Dialect(endpoint))[0].lines[0])
    parts = build_parts(state.rows, state.options, "sim-small", ANTHROPIC, Dialect(endpoint), max_bytes=one * 3)
    assert len(parts) >= 3 and all(p.size <= one * 3 + 100 for p in parts)
    ids = [json.loads(line)["custom_id"] for p in parts for line in p.lines]
    assert ids == [f"r{i}" for i in range(9)]
    assert [(p.first, p.count) for p in parts] == [(sum(q.count for q in parts[:k]), p.count) for k, p in enumerate(parts)]
    result = nbtools.batch([f"row {i}" for i in range(9)], images=images, via="batch", provider="sim")
    assert [r.text.split(" px")[0] for r in result] == [f"I see: image {30 + i}x30" for i in range(9)]


@pytest.mark.parametrize(("size", "detail", "tokens"), [
    ((1024, 1024), None, 765), ((2048, 4096), "high", 1105), ((4096, 8192), "low", 85), ((500, 500), None, 255),
    ((513, 500), None, 425)])
def test_the_dry_run_counts_image_tokens_by_openais_tile_rule(size: tuple[int, int], detail: str | None,
                                                              tokens: int) -> None:
    estimate = nbtools.dry_run(["x"], images=[png_header(*size)], provider="openai", model="gpt-4o", max_tokens=5,
                               image_detail=detail)
    assert estimate.rows[0].image_tokens == tokens and estimate.image_tokens == tokens
    text = nbtools.dry_run(["x"], provider="openai", model="gpt-4o")
    assert estimate.rows[0].prompt_tokens == text.rows[0].prompt_tokens + tokens


def test_an_image_of_no_known_rule_is_unknown_never_zero() -> None:
    estimate = nbtools.dry_run(["x"], images=[png_header(64, 64)], provider="openai", model="gpt-5", max_tokens=5)
    assert estimate.image_tokens is None and estimate.cost_low is None and estimate.rows[0].cost_high is None
    assert "image tokens unknown" in repr(estimate) or "image tokens unknown" in estimate._repr_mimebundle_()["text/plain"]
    with pytest.raises(nbtools.ConfigError, match="max_cost with images= needs"):
        nbtools.batch(["x"], images=[png_header(64, 64)], provider="openai", model="gpt-5", max_tokens=5,
                      max_cost=1.0, api_key_env="HOME")
    claude = nbtools.dry_run(["x"], images=[png_header(750, 100)], provider="anthropic", model="claude-sonnet-4-5")
    assert claude.image_tokens == 100  # width * height / 750


def test_bad_input_is_one_line_before_any_request_or_that_rows_error(tmp_path: Path) -> None:
    text_file = tmp_path / "notes.png"
    text_file.write_text("hello")
    cases = [([str(tmp_path / "missing.png")], "does not exist"), ([str(text_file)], "is not a PNG, JPEG, GIF or WEBP"),
             ([PDF], "pass PDFs with files="), ([[png_header(1, 1)] * 501], "more than the 500")]
    for images, message in cases:
        with pytest.raises(nbtools.ConfigError, match=message) as caught:
            nbtools.batch(["x"], images=images, provider="sim")
        assert "\n" not in str(caught.value)
    with pytest.raises(nbtools.ConfigError, match="over the 5 MB"):
        nbtools.dry_run(["x"], images=[png_header(9, 9) + bytes(6 * 2**20)], provider="anthropic", model="claude-x")
    with pytest.raises(nbtools.ConfigError, match="images= has 1 entries for 2 prompts"):
        nbtools.batch(["x", "y"], images=[png(1, 1)], provider="sim")
    with pytest.raises(nbtools.ConfigError, match="not taken by 'groq'.*'openai', 'sim'"):
        nbtools.batch(["x"], files=[PDF], provider="groq", api_key_env="HOME")
    result = nbtools.batch(["a", "b", "c"], images=[png(2, 2), str(text_file), png(3, 3)], on_bad_input="skip",
                           provider="sim")
    assert [r.status for r in result] == ["ok", "error", "ok"] and result[1].error_kind == "bad_input"
    assert result[1].attempts == 0 and "is not a PNG" in result[1].error


def test_the_cache_keys_on_each_images_hash_holds_no_image_and_resends_only_a_changed_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "replies.sqlite"
    monkeypatch.setenv("NBTOOLS_CACHE", str(cache))
    files = [tmp_path / f"{i}.png" for i in range(3)]
    for i, f in enumerate(files):
        f.write_bytes(png(4, 4, (i * 60, 10, 10)))
    received: list[dict] = []

    async def chat(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response(reply(f"reply {len(received)}"))

    with serve_post("/v1/chat/completions", chat) as url:
        def run() -> nbtools.BatchResult:
            return nbtools.batch(["a", "b", "c"], base_url=url + "/v1", model="m", cache=True,
                                 images=[str(f) for f in files])
        assert all(r.ok and not r.cached for r in run()) and len(received) == 3
        assert all(r.cached for r in run()) and len(received) == 3
        files[1].write_bytes(png(4, 4, (0, 250, 0)))
        again = run()
    assert [r.cached for r in again] == [True, False, True] and len(received) == 4
    assert decoded_parts(received[-1])[1] == ("image/png", files[1].read_bytes())
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("replies.sqlite*"))
    for f in files:
        data = f.read_bytes()
        assert data not in stored and base64.b64encode(data) not in stored and base64.b64encode(data)[:40] not in stored


def test_resend_and_retry_invalid_send_the_same_images_again() -> None:
    image = png(6, 6, (250, 250, 30))
    result = nbtools.batch(["[[sim:invalid]] colour?"], images=[image], provider="sim",
                           schema="colour: red|yellow|blue")
    assert result[0].error_kind == "invalid_output"
    result.retry_invalid()
    assert result[0].ok and result[0].data == {"colour": "yellow"}  # the simulator saw the same image again
    assert result.to_pandas()["images"][0] == [load(image, "image").name]


def test_options_are_checked_as_declared() -> None:
    with pytest.raises(nbtools.ConfigError, match="image_detail='tiny' is not one of"):
        options_from({"image_detail": "tiny"})
    with pytest.raises(nbtools.ConfigError, match="images='a.png' must be a list"):
        options_from({"images": "a.png"})
    assert resolve_endpoint("sim", None, None, None).simulated


def test_several_models_and_a_stream_each_get_the_images() -> None:
    image = png(5, 4, (250, 0, 0))
    several = nbtools.batch(["what is it?"], images=[image], models=["sim:sim-small", "sim:sim-large"], stream=True)
    assert [r.text.split(".")[0] for r in several.rows] == ["I see: image 5x4 px mostly red"] * 2


def test_anthropics_batch_api_reads_the_image_and_document_blocks_and_refuses_a_bad_one(make_sim) -> None:
    server = make_sim(batch_delay=0.2, reply="echo")
    mislabelled = [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(jpeg(8, 8)).decode()}}]}]
    result = nbtools.batch(["look", "read", mislabelled], via="batch", provider="anthropic", base_url=server.base_url,
                           model="sim-small", poll_interval=0.05, images=[png(6, 5, (0, 0, 240)), None, None],
                           files=[None, PDF, None], retries=0)
    assert result[0].text.startswith("I see: image 6x5 px mostly blue")
    assert result[1].text.startswith("I see: PDF of 1 page")
    assert result[2].status == "error" and ("messages.0.content.0.image.source.base64.data: The image was specified "
                                            "using the image/png media type, but does not appear to be a valid png "
                                            "image") in result[2].error


def test_the_responses_api_gets_input_image_and_input_file_with_the_same_bytes(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(png(7, 3))
    seen: list[dict] = []

    async def responses(request: web.Request) -> web.Response:  # an independent server: decodes what it gets
        body = await request.json()
        seen.append(body)
        for part in body["input"][-1]["content"]:
            assert part["type"] in ("input_text", "input_image", "input_file"), part
            assert part["type"] != "input_image" or part["detail"] in ("low", "high", "auto")  # required there
        return web.json_response({"id": "resp_1", "object": "response", "status": "completed", "model": "m",
                                  "output": [{"type": "message", "role": "assistant", "content": [
                                      {"type": "output_text", "text": "ok", "annotations": []}]}],
                                  "usage": {"input_tokens": 3, "output_tokens": 1}})

    with serve_post("/v1/responses", responses) as url:
        result = nbtools.batch(["look"], base_url=url + "/v1", model="m", api="responses", cache=False,
                               images=[[str(photo), "https://example.com/a.png"]], files=[PDF])
    assert result[0].ok, result[0].error
    parts = seen[0]["input"][-1]["content"]
    assert parts[0] == {"type": "input_text", "text": "look"}
    assert parts[1]["image_url"] == "data:image/png;base64," + base64.b64encode(photo.read_bytes()).decode()
    assert parts[2] == {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}
    assert parts[3]["type"] == "input_file" and parts[3]["filename"].endswith(".pdf")
    assert base64.b64decode(parts[3]["file_data"].split(",", 1)[1]) == PDF


def test_a_skipped_row_through_the_batch_api_keeps_its_error_and_the_rest_come_back_in_order(tmp_path: Path) -> None:
    images = [png(10 + i, 10) for i in range(5)]
    images[2] = str(tmp_path / "gone.png")
    passed_on: list[int] = []
    result = nbtools.batch([f"p{i}" for i in range(5)], images=images, via="batch", provider="sim",
                           on_bad_input="skip", poll_interval=0.05, on_result=lambda row: passed_on.append(row.index))
    assert [r.status for r in result] == ["ok", "ok", "error", "ok", "ok"]
    assert sorted(passed_on) == [0, 1, 2, 3, 4] and result.completed_count == 5
    assert result[2].error_kind == "bad_input" and "does not exist" in result[2].error
    assert [r.text.split(" px")[0] for r in result if r.ok] == [f"I see: image {10 + i}x10" for i in (0, 1, 3, 4)]


def test_the_spending_cap_counts_each_requests_image_tokens() -> None:
    # 1024x1024 on the tile rule: 765 tokens, $0.77 a request at $1,000 per million: one request fits under $1.
    result = nbtools.batch(["a", "b", "c"], images=[png_header(1024, 1024)] * 3, provider="sim", max_tokens=5,
                           price=(1000.0, 1000.0), max_cost=1.0)
    assert [r.status for r in result] == ["ok", "not sent", "not sent"]
    assert result[0].prompt_tokens > 765  # the simulator priced the image by the same rule


# Gemini's OpenAI-compatible endpoint, as documented (ai.google.dev/gemini-api/docs/openai, "Image understanding"):
# an image is an image_url part holding a data: URI. Its errors come as a one-element JSON list; the message for an
# image URL is the one it gave in github.com/BoundaryML/baml/issues/1548; for any other wrong part no message of this
# endpoint's was found, so Gemini's generic "Request contains an invalid argument." (as in
# github.com/google-gemini/gemini-cli/issues/14838) in Google's error model (cloud.google.com/apis/design/errors).
GEMINI_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")


def gemini_refusal(message: str) -> web.Response:
    return web.json_response([{"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}], status=400)


def gemini_chat(received: list[bytes]):
    """A chat handler enforcing Gemini's documented part shape; ``received`` gets each image's decoded bytes."""
    async def chat(request: web.Request) -> web.Response:
        for part in (await request.json())["messages"][-1]["content"]:
            url = part.get("image_url", {}).get("url", "") if part.get("type") == "image_url" else None
            if part.get("type") != "text" and url is None:
                return gemini_refusal("Request contains an invalid argument.")
            if url is not None and not url.startswith("data:"):
                return gemini_refusal(f"Invalid or unsupported file uri: {url}")
            if url is not None:
                head, data = url.split(",", 1)
                if head[5:].removesuffix(";base64") not in GEMINI_TYPES:
                    return gemini_refusal("Request contains an invalid argument.")
                received.append(base64.b64decode(data, validate=True))
        return web.json_response(reply())
    return chat


def test_geminis_compatible_endpoint_gets_data_uris_and_a_wrong_part_gets_its_error_body(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(3, 3))
    received: list[bytes] = []
    wrong = [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]
    with serve_post("/v1beta/openai/chat/completions", gemini_chat(received)) as url:
        result = nbtools.batch(["a", wrong], provider="gemini", base_url=url + "/v1beta/openai", api_key="k",
                               model="gemini-2.5-flash", images=[[str(photo), jpeg(8, 6)], None], cache=False,
                               retries=0)
    assert result[0].ok, result[0].error
    assert received == [photo.read_bytes(), jpeg(8, 6)]
    assert result[1].status_code == 400 and "Request contains an invalid argument." in result[1].error
    with pytest.raises(nbtools.ConfigError, match="image 'sha256:.*' is image/gif, which gemini's API does not take: "
                                                  "convert it to one of PNG, JPEG, WEBP"):
        nbtools.batch(["a"], provider="gemini", api_key="k", images=[GIF], dry_run=True)


def test_an_image_url_is_fetched_first_where_the_provider_takes_none(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBTOOLS_CACHE", str(tmp_path / "replies.sqlite"))
    served = {"cat.png": png(4, 2, (10, 200, 10))}
    received: list[bytes] = []

    async def image(request: web.Request) -> web.Response:
        data = served.get(request.match_info["name"])
        return web.Response(body=data, content_type="image/png") if data else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/img/{name}", image)
    app.router.add_post("/v1beta/openai/chat/completions", gemini_chat(received))
    with serve_app(app) as url:
        def run() -> nbtools.BatchResult:
            return nbtools.batch(["a", "b"], provider="gemini", base_url=url + "/v1beta/openai", api_key="k",
                                 model="gemini-2.5-flash", images=[url + "/img/cat.png", url + "/img/gone.png"],
                                 on_bad_input="skip", cache=True)
        first = run()
        assert first[0].ok and received == [served["cat.png"]], first[0].error
        assert first[1].error_kind == "bad_input" and "\n" not in first[1].error
        assert f"image {url}/img/gone.png could not be fetched (HTTP 404 Not Found)" in first[1].error
        assert run()[0].cached and len(received) == 1  # the same bytes: the same key
        served["cat.png"] = png(4, 2, (200, 10, 10))
        assert not run()[0].cached and received[-1] == served["cat.png"]  # new bytes at the same URL: sent again
    assert first.to_pandas()["images"][0] == [url + "/img/cat.png"]  # named by its URL, not embedded
    with serve_post("/v1/chat/completions", gemini_chat(received)) as url:  # a provider that fetches: URL as it is
        row = nbtools.batch(["c"], base_url=url + "/v1", model="m", images=["https://example.com/x.png"],
                            cache=False, retries=0)[0]
    assert row.status_code == 400 and "Invalid or unsupported file uri: https://example.com/x.png" in row.error


def test_resend_sends_the_images_of_the_rows_an_expired_batch_job_did_not_run(make_sim) -> None:
    server = make_sim(batch_delay=1.0, batch_expire=0.5, latency=0.01)
    images = [png(i + 1, 2, (10, 10, 240)) for i in range(20)]  # each row's own size: its reply names it
    result = nbtools.batch(["what is it?"] * 20, via="batch", base_url=server.base_url, model="sim-small",
                           poll_interval=0.05, images=images)
    missing = [r.index for r in result if r.status == "not sent"]
    assert missing and len(missing) < 20, [r.status for r in result]  # the job expired half way
    server.configure(batch_expire=None)
    nbtools.resend(result, via="batch", poll_interval=0.05)
    assert [r.text.split(" px")[0] for r in result] == [f"I see: image {i + 1}x2" for i in range(20)]
    assert server.batch_stats()["jobs"] == 2
