"""``HFInferNodeParser``: Elasticsearch-compatible chunking as a LlamaIndex node parser."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.node_parser.interface import TextSplitter
from llama_index.core.node_parser.node_utils import build_nodes_from_splits
from llama_index.core.schema import BaseNode, Document, MetadataMode, TextNode
from llama_index.core.utils import get_tqdm_iterable

from hf_infer_core import Chunk, ChunkingSettings, InferenceEndpoint, chunk_text, resolve_chunking_settings
from hf_infer_core.text._fit import token_fitter

__all__ = ["HFInferNodeParser"]


class HFInferNodeParser(TextSplitter):
    """Split documents into nodes exactly as Elasticsearch's inference chunkers do.

    Nodes carry ``start_char_idx``/``end_char_idx``: the exact offsets of the chunk in the
    source text, from the chunker itself rather than from searching the text.
    """

    chunking: dict[str, Any] = Field(
        default_factory=dict, description="The chunking settings, as Elasticsearch shows them."
    )
    keep_trailing_text: bool = Field(
        default=False, description="Extend the last word chunk over a wordless remainder (not Elasticsearch's)."
    )
    max_input_tokens: int | None = Field(default=None, description="The model's token limit (with tokenizer).")
    _settings: ChunkingSettings = PrivateAttr()
    _fit: Callable[[str, list[Chunk]], list[Chunk]] = PrivateAttr()

    def __init__(
        self,
        chunking_settings: ChunkingSettings | InferenceEndpoint | Mapping[str, Any] | str | None = None,
        *,
        tokenizer: Any = None,
        **kwargs: Any,
    ) -> None:
        """Create a parser from chunking settings (model, endpoint, Elasticsearch dict or JSON).

        ``tokenizer`` (a ``tokenizers.Tokenizer`` or ``tokenizer.json`` path) with
        ``max_input_tokens`` (or an endpoint's): chunks over the limit are split again at word
        boundaries into the fewest pieces that fit, as the clients do.
        """
        settings = resolve_chunking_settings(chunking_settings)
        super().__init__(**kwargs)
        self.chunking = settings.to_dict()
        self._settings = settings
        self._fit = token_fitter(chunking_settings, tokenizer, self.max_input_tokens)

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "HFInferNodeParser"

    def split_text(self, text: str) -> list[str]:
        """Return the chunk texts of ``text``."""
        return [chunk.text for chunk in self._chunks(text)]

    def _chunks(self, text: str) -> list[Chunk]:
        return self._fit(text, chunk_text(text, self._settings, keep_trailing_text=self.keep_trailing_text))

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any) -> list[BaseNode]:
        out: list[BaseNode] = []
        for node in get_tqdm_iterable(nodes, show_progress, "Parsing nodes"):
            chunks = self._chunks(node.get_content(metadata_mode=MetadataMode.NONE))
            built = build_nodes_from_splits([c.text for c in chunks], node, id_func=self.id_func)
            for new, chunk in zip(built, chunks, strict=True):
                new.start_char_idx = chunk.start
                new.end_char_idx = chunk.end
            out.extend(built)
        return out

    def _postprocess_parsed_nodes(self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]) -> list[BaseNode]:
        # The base class re-derives offsets with str.find; ours are exact, so keep them.
        offsets = {n.node_id: (n.start_char_idx, n.end_char_idx) for n in nodes if isinstance(n, TextNode)}
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        for node in nodes:
            if isinstance(node, TextNode) and node.node_id in offsets:
                node.start_char_idx, node.end_char_idx = offsets[node.node_id]
        return nodes
