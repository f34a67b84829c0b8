"""LateInteractionRerank (llama_index.postprocessor.latecore) with the fake encoder."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.latecore import LateInteractionRerank

from latecore import MultivectorCache, Reranker
from latecore.errors import ZeroShotWarning
from latecore.testing import FakeEncoder

TOPICS = [
    "the stock market fell sharply after the bank raised rates",
    "cats purr when they are content and sleep a lot",
    "paris is the capital city of france on the river seine",
    "python is a programming language for data and code",
    "the piano and the guitar are popular music instruments",
    "coffee and tea are drunk with bread and cheese",
]


def scored_nodes(texts: list[str] = TOPICS) -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=t, id_=f"n{i}", metadata={"source": f"doc-{i}"}),
            score=1.0 - i / 100,
        )
        for i, t in enumerate(texts)
    ]


def test_reranks_by_maxsim_and_matches_the_core_reranker() -> None:
    encoder = FakeEncoder()
    rerank = LateInteractionRerank(top_n=3, encoder=encoder)
    nodes = scored_nodes()
    out = rerank.postprocess_nodes(nodes, query_str="what is the capital of france")
    assert out[0].node.node_id == "n2"
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    # the postprocessor's encoder is ``encoder`` with a cache attached (float16 storage)
    expected = Reranker(rerank.reranker.encoder).rerank(
        "what is the capital of france", texts, top_k=3
    )
    assert [n.node.node_id for n in out] == [f"n{r.index}" for r in expected]
    assert [n.score for n in out] == pytest.approx([r.score for r in expected])


def test_missing_query_bundle_raises() -> None:
    rerank = LateInteractionRerank(encoder=FakeEncoder())
    with pytest.raises(ValueError, match="query"):
        rerank.postprocess_nodes(scored_nodes())


def test_no_nodes_gives_empty_list_without_encoding() -> None:
    encoder = FakeEncoder()
    rerank = LateInteractionRerank(encoder=encoder)
    assert rerank.postprocess_nodes([], query_bundle=QueryBundle("anything")) == []
    assert encoder.calls == 0


@pytest.mark.parametrize("top_n", [1, 4, 10])
def test_top_n_and_scores_are_descending_floats(top_n: int) -> None:
    rerank = LateInteractionRerank(top_n=top_n, encoder=FakeEncoder())
    out = rerank.postprocess_nodes(scored_nodes(), query_str="music with piano")
    assert len(out) == min(top_n, len(TOPICS))
    assert all(type(n.score) is float for n in out)
    scores = [n.get_score(raise_error=True) for n in out]
    assert scores == sorted(scores, reverse=True)
    assert out[0].node.node_id == "n4"


def test_top_n_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LateInteractionRerank(top_n=0, encoder=FakeEncoder())


def test_keep_retrieval_score_keeps_the_old_score_without_touching_inputs() -> None:
    nodes = scored_nodes()
    before = [(n.node.node_id, dict(n.node.metadata), n.score) for n in nodes]
    llm_views = [n.node.get_content(metadata_mode=MetadataMode.LLM) for n in nodes]
    rerank = LateInteractionRerank(top_n=6, keep_retrieval_score=True, encoder=FakeEncoder())
    out = rerank.postprocess_nodes(nodes, query_str="cats sleep")
    old = {n.node.node_id: n.score for n in nodes}
    for n in out:
        assert n.node.metadata["retrieval_score"] == old[n.node.node_id]
        assert n.node.metadata["source"] == f"doc-{n.node.node_id[1:]}"
        original = nodes[int(n.node.node_id[1:])].node
        for mode in (MetadataMode.EMBED, MetadataMode.LLM):
            assert n.node.get_content(metadata_mode=mode) == original.get_content(
                metadata_mode=mode
            )
    assert [(n.node.node_id, n.node.metadata, n.score) for n in nodes] == before
    assert [n.node.get_content(metadata_mode=MetadataMode.LLM) for n in nodes] == llm_views


def test_without_keep_retrieval_score_nodes_are_shared_and_scores_new() -> None:
    nodes = scored_nodes()
    rerank = LateInteractionRerank(top_n=6, encoder=FakeEncoder())
    out = rerank.postprocess_nodes(nodes, query_str="cats sleep")
    by_id = {n.node.node_id: n for n in nodes}
    for n in out:
        assert n.node is by_id[n.node.node_id].node
        assert n is not by_id[n.node.node_id]
        assert "retrieval_score" not in n.node.metadata
    assert [n.score for n in nodes] == [1.0 - i / 100 for i in range(len(TOPICS))]


def test_node_text_is_the_embed_view(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    node = TextNode(
        text="a short passage",
        metadata={"title": "Coffee", "secret": "x"},
        excluded_embed_metadata_keys=["secret"],
    )
    LateInteractionRerank(encoder=encoder).postprocess_nodes(
        [NodeWithScore(node=node, score=0.5)], query_str="coffee"
    )
    assert encoder.encoded[0] == node.get_content(metadata_mode=MetadataMode.EMBED)
    assert "Coffee" in encoder.encoded[0] and "secret" not in encoder.encoded[0]


def test_ten_queries_over_fifty_nodes_encode_each_node_once(tmp_path: Path) -> None:
    encoder = FakeEncoder(cache=MultivectorCache(tmp_path / "cache"))
    rerank = LateInteractionRerank(top_n=5, keep_retrieval_score=True, encoder=encoder)
    nodes = scored_nodes([f"passage {i} about {TOPICS[i % len(TOPICS)]}" for i in range(50)])
    queries = [f"question {q} about cats and the market" for q in range(10)]
    for query in queries:
        out = rerank.postprocess_nodes(nodes, query_str=query)
        # Reranking the reranked nodes again (with retrieval_score added) is free too.
        rerank.postprocess_nodes(out, query_str=query)
    counts = Counter(encoder.encoded)
    node_texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    assert all(counts[t] == 1 for t in node_texts)
    assert sum(counts[t] for t in node_texts) == 50
    assert len(encoder.encoded) == 50
    assert encoder.encoded_queries == [q for q in queries for _ in range(2)]


def test_events_are_dispatched_in_order() -> None:
    seen: list[BaseEvent] = []

    class Collector(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "Collector"

        def handle(self, event: BaseEvent, **kwargs: Any) -> None:
            if isinstance(event, ReRankStartEvent | ReRankEndEvent):
                seen.append(event)

    root = get_dispatcher()
    collector = Collector()
    root.add_event_handler(collector)
    try:
        rerank = LateInteractionRerank(top_n=2, encoder=FakeEncoder(name="events"))
        out = rerank.postprocess_nodes(scored_nodes(), query_str="python code")
    finally:
        root.event_handlers.remove(collector)
    start, end = seen
    assert isinstance(start, ReRankStartEvent) and isinstance(end, ReRankEndEvent)
    assert start.top_n == 2 and start.model_name == "FakeEncoder:events"
    assert start.query is not None and len(start.nodes) == len(TOPICS)
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in out]


def test_async_postprocess_matches_sync() -> None:
    rerank = LateInteractionRerank(top_n=3, encoder=FakeEncoder())
    nodes = scored_nodes()
    sync = rerank.postprocess_nodes(nodes, query_str="tea and bread")
    result = asyncio.run(rerank.apostprocess_nodes(nodes, query_str="tea and bread"))
    assert [(n.node.node_id, n.score) for n in result] == [(n.node.node_id, n.score) for n in sync]


def test_settings_are_pydantic_fields_and_serialise() -> None:
    reranker = Reranker(FakeEncoder())
    rerank = LateInteractionRerank(model="my-colbert", top_n=2, reranker=reranker)
    assert rerank.reranker is reranker
    assert LateInteractionRerank.class_name() == "LateInteractionRerank"
    assert rerank.to_dict() == {
        "model": "my-colbert",
        "top_n": 2,
        "keep_retrieval_score": False,
        "device": None,
        "cache_dir": None,
        "class_name": "LateInteractionRerank",
    }
    with pytest.raises(ValueError, match="either encoder or reranker"):
        LateInteractionRerank(encoder=FakeEncoder(), reranker=reranker)


def test_default_construction_loads_a_cached_encoder(minilm_path: Path, tmp_path: Path) -> None:
    with pytest.warns(ZeroShotWarning):
        rerank = LateInteractionRerank(
            model=str(minilm_path), top_n=1, device="cpu", cache_dir=tmp_path / "mv"
        )
    encoder = rerank.reranker.encoder
    assert encoder.cache is not None and encoder.cache.directory == tmp_path / "mv"
    assert rerank.model == str(minilm_path) and rerank.cache_dir == str(tmp_path / "mv")
    out = rerank.postprocess_nodes(scored_nodes(), query_str="Which city is the capital of France?")
    assert out[0].node.node_id == "n2"
    assert encoder.cache.stats().items == len(TOPICS)
