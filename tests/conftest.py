from __future__ import annotations

from collections.abc import Iterator

import pytest

from hf_infer_server import LocalServer, run_local_server

# The key the test servers require; also the secret canary the leak tests look for.
SERVER_KEY = "hf_SECRET_canary_123"


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalServer]:
    """The real all-MiniLM-L6-v2 model behind real HTTP on 127.0.0.1, for the whole session."""
    with run_local_server(SERVER_KEY) as server:
        yield server
