"""Both drivers and the adapters go through the environment's proxy, as httpx does by default."""

from __future__ import annotations

import asyncio

import pytest

from hf_infer_core import (
    TransportError,
)
from llama_index_hf_infer import HFInferEmbedding

from ..fake_endpoint import expected_vector, fake_endpoint
from .drive import DRIVERS, free_port, make_client, run_call

# ------------------------------------------------------------------ proxies from the environment


@pytest.mark.parametrize("driver", DRIVERS)
def test_both_drivers_go_through_the_environments_proxy(driver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake endpoint answers a proxy's absolute-form request itself: it stands for the proxy.
    nowhere = f"http://127.0.0.1:{free_port()}/embed"  # nothing listens there
    with fake_endpoint() as proxy:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        assert run_call(make_client(driver, nowhere), "embed", ["via proxy"]) == [expected_vector("via proxy")]
        assert [e.inputs for e in proxy.log] == [["via proxy"]]

        # NO_PROXY, and trust_env=False, go direct (refused: nothing listens there).
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with pytest.raises(TransportError, match="refused"):
            run_call(make_client(driver, nowhere, connect_retry_deadline=0.5), "embed", ["direct"])
        monkeypatch.delenv("NO_PROXY")
        with pytest.raises(TransportError, match="refused"):
            run_call(make_client(driver, nowhere, connect_retry_deadline=0.5, trust_env=False), "embed", ["direct"])
        assert len(proxy.log) == 1


def test_adapters_and_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_endpoint() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        nowhere = f"http://127.0.0.1:{free_port()}/embed"
        emb = HFInferEmbedding(url=nowhere, api_key="k", requests_per_minute=None)
        assert emb.get_text_embedding("x") == expected_vector("x")
        assert asyncio.run(emb.aget_text_embedding("y")) == expected_vector("y")
