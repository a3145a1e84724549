"""What both rerank adapters share: their fields (the rerank options, ``top_n``) and the two calls.

``langchain_hf_infer.HFInferRerank`` (a ``BaseDocumentCompressor``) and
``llama_index_hf_infer.HFInferRerank`` (a ``BaseNodePostprocessor``) add only their framework's
base class and the conversion of its documents or nodes to texts and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, PrivateAttr

from ..config import InferenceEndpoint
from ..config._options import RerankOptions
from ..rerank._flows import RerankResult
from ._adapter import ADAPTER_CONFIG, EndpointAdapter
from ._session import RerankSession

__all__ = ["RerankAdapter"]


class RerankAdapter(EndpointAdapter, RerankOptions):
    """Endpoint and client options of the rerank adapters, and ``top_n`` (see the README)."""

    model_config = ADAPTER_CONFIG

    task_type: ClassVar[str] = "rerank"

    top_n: int | None = Field(
        default=None,
        gt=0,
        le=2**31 - 1,
        strict=True,
        description="The most results returned, best first (Elasticsearch's task_settings.top_n); None: all.",
    )

    _session: RerankSession = PrivateAttr()

    def _task_settings(self) -> dict[str, object]:
        return {"task_settings": {"top_n": self.top_n} if self.top_n is not None else None}

    @classmethod
    def _task_fields(cls, endpoint: InferenceEndpoint) -> dict[str, object]:
        return {"top_n": endpoint.task_settings.top_n if endpoint.task_settings is not None else None}

    @property
    def client_options(self) -> RerankOptions:
        """The client options, as the clients use them."""
        return self._session.options

    def rank(self, query: str, texts: Sequence[str], top_n: int | None = None) -> list[RerankResult]:
        """``texts`` scored against ``query``: the ``top_n`` best (default: the field's), highest first."""
        return self._session.call(lambda client: client.rerank(query, texts, top_n=top_n))

    async def arank(self, query: str, texts: Sequence[str], top_n: int | None = None) -> list[RerankResult]:
        """:meth:`rank` with asyncio (native, no thread hop)."""
        return await self._session.acall(lambda client: client.rerank(query, texts, top_n=top_n))
