"""What each request costs the client, without changing what goes over the wire: bodies, URLs, cookies."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from hf_infer_core.protocol._wire import dumps

from .fakes import build, vector_for


@pytest.mark.parametrize(
    "payload",
    [
        {"inputs": ["plain", "é and 😀", 'quote " backslash \\ tab \t nul \x00 del \x7f', "line\u2028sep"]},
        {"inputs": "one text", "truncate": True, "truncation_direction": "Right", "dimensions": 8, "prompt_name": None},
        {"query": "q", "texts": ["a", "b"], "raw_scores": False, "return_text": False},
    ],
)
def test_request_bodies_are_the_bytes_the_json_module_writes(payload: dict[str, object]) -> None:
    # Recorded cassettes match requests by their bodies: orjson must write the same bytes.
    assert dumps(payload) == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_a_body_orjson_cannot_write_fails_as_the_json_module_does() -> None:
    with pytest.raises(UnicodeEncodeError):
        dumps({"inputs": ["lone \ud800 surrogate"]})


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_cookies_an_endpoint_sets_are_sent_back_and_none_are_made_up(driver: str) -> None:
    """Answers that set no cookie skip http.cookiejar (a tenth of the client's CPU); one that does is kept."""
    cookies: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cookies.append(request.headers.get("cookie"))
        inputs = json.loads(request.content)["inputs"]
        headers = {"set-cookie": "route=replica-2; Path=/"} if len(cookies) == 2 else {}
        return httpx.Response(200, json=[vector_for(t) for t in inputs], headers=headers)

    client = build(driver, handler, batch_size=1, max_concurrency=1, discover=False)
    texts = [["a"], ["b"], ["c"]]
    if driver == "sync":
        with client:
            for batch in texts:
                client.embed(batch)
    else:

        async def run() -> None:
            async with client:
                for batch in texts:
                    await client.embed(batch)

        asyncio.run(run())
    assert cookies == [None, None, "route=replica-2"]
