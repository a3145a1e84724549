"""The server app in process (starlette TestClient): answers 503 while its model loads, and says why a load failed."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from hf_infer_server import create_app


def test_while_loading_then_unhealthy_when_the_model_cannot_load(tmp_path: object) -> None:
    app = create_app(str(tmp_path) + "/no-such-model", api_key="k", max_batch_size=4)
    with TestClient(app) as client:
        auth = {"Authorization": "Bearer k"}
        first = client.post("/embed", json={"inputs": ["x"]}, headers=auth)
        assert first.status_code == 503
        body = first.json()
        assert "is currently loading" in body["error"] or "failed to load" in body["error"]
        if "is currently loading" in body["error"]:  # (the path holds "loading": the test's name)
            assert body["estimated_time"] > 0
        deadline = time.monotonic() + 120
        while "failed to load" not in client.get("/health", headers=auth).text and time.monotonic() < deadline:
            time.sleep(0.2)
        health = client.get("/health", headers=auth)
        assert health.status_code == 503
        assert health.json()["error_type"] == "unhealthy"
        assert client.post("/embed", json={"inputs": ["x"]}).status_code == 401  # auth is checked first
        assert client.get("/info", headers=auth).json()["max_client_batch_size"] == 4
