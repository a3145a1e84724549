"""Cassette tests: recorded against the real local server by ``make record``, replayed everywhere else.

Requests go to a fixed address (RECORD_PORT) so recorded URIs are stable. When pytest runs with
``--record-mode`` other than ``none``, a real server is started on that port for the recording;
in the default mode (``none``, what ``make test`` and CI use) nothing is started and any request
without a recording fails. The Authorization header is filtered out of every cassette.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hf_infer_server import run_local_server

from ..conftest import SERVER_KEY

RECORD_PORT = 18765
BASE_URL = f"http://127.0.0.1:{RECORD_PORT}"


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    # No record_mode here: it would override --record-mode and let CI reach the network.
    return {"filter_headers": ["authorization"], "match_on": ["method", "scheme", "host", "port", "path", "body"]}


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(Path(__file__).parent)


@pytest.fixture(scope="session")
def cassette_server(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.config.getoption("--record-mode") in (None, "none"):
        yield BASE_URL
        return
    with run_local_server(SERVER_KEY, port=RECORD_PORT):
        yield BASE_URL
