from __future__ import annotations

from langchain_core.documents import Document as LCDocument
from langchain_text_splitters import TextSplitter
from llama_index.core import Document
from llama_index.core.node_parser import NodeParser

from hf_infer_core import InferenceEndpoint, chunk_text
from langchain_hf_infer import HFInferTextSplitter
from llama_index_hf_infer import HFInferNodeParser

SETTINGS = {"strategy": "word", "max_chunk_size": 10, "overlap": 5}
# Repeated text: offsets found by searching would point at the first copy.
TEXT = "same words again and again. " * 12


def test_langchain_splitter_matches_core_and_carries_offsets() -> None:
    splitter = HFInferTextSplitter(SETTINGS)
    assert isinstance(splitter, TextSplitter)
    chunks = chunk_text(TEXT, SETTINGS)
    assert splitter.split_text(TEXT) == [c.text for c in chunks]
    docs = splitter.create_documents([TEXT], [{"source": "a"}])
    assert [(d.metadata["start_index"], d.metadata["end_index"]) for d in docs] == [(c.start, c.end) for c in chunks]
    assert all(d.metadata["source"] == "a" for d in docs)
    for doc in docs:
        assert TEXT[doc.metadata["start_index"] : doc.metadata["end_index"]] == doc.page_content


def test_langchain_split_documents_keeps_metadata() -> None:
    splitter = HFInferTextSplitter('{"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0}')
    docs = splitter.split_documents([LCDocument(page_content=TEXT, metadata={"id": 1}), LCDocument(page_content="x")])
    assert docs[-1].page_content == "x"
    assert docs[-1].metadata == {"start_index": 0, "end_index": 1}
    assert all(d.metadata["id"] == 1 for d in docs[:-1])


def test_llama_index_parser_offsets_are_exact() -> None:
    endpoint = InferenceEndpoint.from_request(
        "text_embedding",
        "x",
        {
            "service": "hugging_face",
            "service_settings": {"url": "http://h", "api_key": "k"},
            "chunking_settings": SETTINGS,
        },
    )
    parser = HFInferNodeParser(endpoint)
    assert isinstance(parser, NodeParser)
    nodes = parser.get_nodes_from_documents([Document(text=TEXT, metadata={"source": "b"})])
    chunks = chunk_text(TEXT, SETTINGS)
    assert [(n.start_char_idx, n.end_char_idx) for n in nodes] == [(c.start, c.end) for c in chunks]
    assert [n.get_content() for n in nodes] == [c.text for c in chunks]
    assert all(n.metadata["source"] == "b" for n in nodes)
    assert parser.split_text(TEXT) == [c.text for c in chunks]
    assert HFInferNodeParser.class_name() == "HFInferNodeParser"
    assert parser.chunking == SETTINGS


def test_splitters_end_where_elasticsearch_ends_unless_asked() -> None:
    from llama_index.core.schema import Document as LIDocument

    from langchain_hf_infer import HFInferTextSplitter
    from llama_index_hf_infer import HFInferNodeParser

    text = " ".join(f"w{i}" for i in range(20)) + ". "
    settings = {"strategy": "word", "max_chunk_size": 10, "overlap": 0}
    assert HFInferTextSplitter(settings).create_documents([text])[-1].metadata["end_index"] == len(text) - 2
    assert HFInferTextSplitter(settings, keep_trailing_text=True).split_text(text)[-1].endswith(". ")
    nodes = HFInferNodeParser(settings).get_nodes_from_documents([LIDocument(text=text)])
    assert nodes[-1].end_char_idx == len(text) - 2
    covering = HFInferNodeParser(settings, keep_trailing_text=True).get_nodes_from_documents([LIDocument(text=text)])
    assert covering[-1].end_char_idx == len(text)
