"""``HFInferRerank``: a LlamaIndex node postprocessor that reranks through a Hugging Face / TEI ``/rerank`` endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import ConfigDict, SecretStr, field_serializer
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from hf_infer_core import RerankResult
from hf_infer_core.integration._rerank import RerankAdapter

__all__ = ["HFInferRerank"]

dispatcher = instrument.get_dispatcher(__name__)  # type: ignore[attr-defined]  # as llama-index-core's own modules do


class HFInferRerank(BaseNodePostprocessor, RerankAdapter):
    """Rerank retrieved nodes with a cross-encoder endpoint, configured like Elasticsearch's rerank task.

    ``postprocess_nodes(nodes, query_str=...)`` (or a query bundle) returns the ``top_n`` best
    nodes (the field; ``None``: all), best first, as ``NodeWithScore`` whose ``score`` is the
    relevance; ``apostprocess_nodes`` is natively async. Each node is scored on its content with
    its embed metadata (``MetadataMode.EMBED``), as LlamaIndex's own rerankers do, and the
    ``ReRankStartEvent`` / ``ReRankEndEvent`` events and the ``RERANKING`` callback event are
    emitted as theirs are. Same endpoint options as ``langchain_hf_infer.HFInferRerank``.
    """

    model_config = ConfigDict(extra="forbid")

    @field_serializer("api_key")
    def _no_key(self, value: SecretStr | None) -> None:
        return None  # dumps never hold the key: a rebuilt reranker takes it from HF_TOKEN

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "HFInferRerank"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("Missing query bundle: call postprocess_nodes(nodes, query_str=...)")
        with self._events(nodes, query_bundle) as done:
            if not nodes:
                return done([])
            return done(_scored(nodes, self.rank(query_bundle.query_str, _texts(nodes))))

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("Missing query bundle: call apostprocess_nodes(nodes, query_str=...)")
        with self._events(nodes, query_bundle) as done:
            if not nodes:
                return done([])
            return done(_scored(nodes, await self.arank(query_bundle.query_str, _texts(nodes))))

    if not hasattr(BaseNodePostprocessor, "apostprocess_nodes"):  # an older llama-index-core (0.12.0, the floor)

        async def apostprocess_nodes(
            self,
            nodes: list[NodeWithScore],
            query_bundle: QueryBundle | None = None,
            query_str: str | None = None,
        ) -> list[NodeWithScore]:
            """:meth:`postprocess_nodes` with asyncio (native), as newer ``BaseNodePostprocessor`` has it."""
            if query_str is not None and query_bundle is not None:
                raise ValueError("Cannot specify both query_str and query_bundle")
            return await self._apostprocess_nodes(
                nodes, QueryBundle(query_str) if query_str is not None else query_bundle
            )

    @contextmanager
    def _events(self, nodes: list[NodeWithScore], query: QueryBundle) -> Iterator[_Done]:
        """LlamaIndex's reranker events around one call; ``done(nodes)`` records its result and returns it."""
        top_n = self.top_n or len(nodes)
        dispatcher.event(ReRankStartEvent(query=query, nodes=nodes, top_n=top_n, model_name=self.model or ""))
        payload: dict[str, Any] = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query.query_str,
            EventPayload.TOP_K: top_n,
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            done = _Done(event)
            yield done
        dispatcher.event(ReRankEndEvent(nodes=done.nodes))


class _Done:
    """Records a call's ranked nodes on its callback event."""

    def __init__(self, event: object) -> None:
        self._event = event
        self.nodes: list[NodeWithScore] = []

    def __call__(self, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        self.nodes = nodes
        self._event.on_end(payload={EventPayload.NODES: nodes})  # type: ignore[attr-defined]
        return nodes


def _texts(nodes: list[NodeWithScore]) -> list[str]:
    return [node.node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]


def _scored(nodes: list[NodeWithScore], results: list[RerankResult]) -> list[NodeWithScore]:
    # New NodeWithScore objects: the retriever's keep their retrieval scores.
    return [NodeWithScore(node=nodes[r.index].node, score=r.relevance_score) for r in results]
