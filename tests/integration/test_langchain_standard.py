"""LangChain's standard integration suite against the real local server."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from hf_infer_server import LocalServer
from langchain_hf_infer import HFInferEmbeddings


class TestHFInferEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[HFInferEmbeddings]:
        return HFInferEmbeddings

    @pytest.fixture
    def model(self, local_server: LocalServer) -> HFInferEmbeddings:
        return HFInferEmbeddings(url=local_server.embed_url, api_key=local_server.api_key)
