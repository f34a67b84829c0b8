"""End to end in LlamaIndex query engines with the real MiniLM weights (zero-shot ColBERT).

The LLM and the embedding model are LlamaIndex's mocks: MockEmbedding gives every
text the same vector, so the first stage cannot rank, and only late interaction
can put the labelled answer first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.base.response.schema import Response
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.postprocessor.latecore import LateInteractionRerank
from llama_index.retrievers.latecore import LateInteractionRetriever

from latecore import Encoder, MultivectorCache

ANSWER_ID = "answer"
QUESTION = "What is the capital city of France?"
PASSAGES = {
    "dogs": "Dogs are loyal animals that bark at strangers and love long walks.",
    "market": "The stock market fell sharply after the central bank raised interest rates.",
    ANSWER_ID: "Paris is the capital and largest city of France, on the river Seine.",
    "rocket": "The rocket carried a satellite into orbit around the Earth.",
    "piano": "The piano is a keyboard instrument invented in Italy around 1700.",
    "berlin": "Berlin is a city in Germany known for its museums and nightlife.",
    "coffee": "Coffee beans are roasted seeds of the Coffea plant.",
    "python": "Python is a programming language that emphasises readable code.",
}


@pytest.fixture
def mock_settings() -> Iterator[None]:
    """Mock LLM and embeddings in llama_index Settings (no network), restored afterwards."""
    saved = (Settings._llm, Settings._embed_model)
    Settings.llm = MockLLM(max_tokens=16)
    Settings.embed_model = MockEmbedding(embed_dim=8)
    try:
        yield
    finally:
        Settings._llm, Settings._embed_model = saved


@pytest.fixture
def encoder(minilm_encoder: Encoder, tmp_path: Path) -> Encoder:
    return minilm_encoder.with_cache(MultivectorCache(tmp_path / "cache"))


def nodes() -> list[TextNode]:
    return [TextNode(text=text, id_=node_id) for node_id, text in PASSAGES.items()]


def test_postprocessor_in_a_vector_store_query_engine(
    mock_settings: None, encoder: Encoder
) -> None:
    index = VectorStoreIndex(nodes())
    engine = index.as_query_engine(
        similarity_top_k=len(PASSAGES),
        node_postprocessors=[LateInteractionRerank(top_n=3, encoder=encoder)],
    )
    response = engine.query(QUESTION)
    assert response.source_nodes[0].node.node_id == ANSWER_ID
    assert len(response.source_nodes) == 3
    assert isinstance(response, Response) and response.response
    scores = [n.get_score(raise_error=True) for n in response.source_nodes]
    assert scores == sorted(scores, reverse=True)
    # Every passage was encoded once and is now cached: a second query encodes nothing new.
    assert encoder.cache is not None and encoder.cache.stats().items == len(PASSAGES)
    engine.query("Which animal barks?")
    assert encoder.cache.stats().items == len(PASSAGES)


def test_retriever_and_postprocessor_in_a_retriever_query_engine(
    mock_settings: None, encoder: Encoder
) -> None:
    retriever = LateInteractionRetriever(nodes(), encoder=encoder, similarity_top_k=4)
    engine = RetrieverQueryEngine.from_args(
        retriever,
        llm=MockLLM(max_tokens=16),
        node_postprocessors=[LateInteractionRerank(top_n=2, encoder=encoder)],
    )
    response = engine.query(QUESTION)
    assert response.source_nodes[0].node.node_id == ANSWER_ID
    assert retriever.retrieve("Which instrument has keys?")[0].node.node_id == "piano"
