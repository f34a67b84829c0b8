"""LlamaIndex page retriever (ImageNodes) and image-node reranker, end to end on the tiny page
checkpoint: images as paths or base64, metadata, scores, filters, cached page vectors."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest
from _pages_adapter_support import DPI, PageCorpus, build_corpus, same_pixels
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
from llama_index.postprocessor.latecore import LateInteractionImageRerank, page_from_node
from llama_index.retrievers.latecore import LateInteractionPageRetriever

from latecore import HybridSearcher, LateIndex, MultivectorCache
from latecore.maxsim import maxsim_batch
from latecore.testing import FakeEncoder
from latecore.vision import PageEncoder

QUERY = "quarterly revenue in the north region"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_page_encoder_path: Path) -> PageCorpus:
    return build_corpus(tmp_path_factory.mktemp("li-pages"), tiny_page_encoder_path)


@pytest.fixture(scope="module")
def retriever(corpus: PageCorpus) -> LateInteractionPageRetriever:
    """All pages, PDF pages without saved images (their nodes carry base64 images)."""
    return LateInteractionPageRetriever(
        corpus.pages, encoder=corpus.encoder, similarity_top_k=len(corpus.pages)
    )


def _decoded(node: ImageNode) -> object:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(node.image or "")))


def test_retrieve_returns_image_nodes_with_text_metadata_image_and_score(
    retriever: LateInteractionPageRetriever, corpus: PageCorpus
) -> None:
    results = retriever.retrieve(QUERY)
    hits = retriever.index.search(QUERY, k=len(corpus.pages))
    assert [(r.node.node_id, r.score) for r in results] == [(h.id, h.score) for h in hits]
    by_id = {p.id: p for p in corpus.pages}
    for result in results:
        node, page = result.node, by_id[result.node.node_id]
        assert isinstance(node, ImageNode)
        assert node.text == page.text
        assert node.metadata == page.metadata
        if page.metadata["kind"] == "pdf":  # never saved as a file: the rendered page, base64
            assert node.image_path is None and node.image_mimetype == "image/png"
            assert same_pixels(_decoded(node), page.image)
        else:
            assert node.image_path == str(corpus.png) and node.image is None
    first = next(r.node for r in results if r.node.node_id == f"{corpus.pdf}:page_1")
    assert first.get_content(MetadataMode.LLM).startswith(f"source: {corpus.pdf}\npage: 1")
    assert "dpi" not in first.get_content(MetadataMode.LLM)  # layout keys are hidden


def test_saved_page_images_become_image_paths(corpus: PageCorpus, tmp_path: Path) -> None:
    retriever = LateInteractionPageRetriever.from_files(
        corpus.pdf, encoder=corpus.encoder, dpi=DPI, image_dir=tmp_path, similarity_top_k=2
    )
    results = retriever.retrieve(QUERY)
    assert len(results) == 2
    for result in results:
        node = result.node
        assert isinstance(node, ImageNode) and node.image is None
        assert Path(str(node.image_path)).parent == tmp_path
        assert node.image_mimetype == "image/png"
    assert [n.node_id for n in retriever.get_nodes([f"{corpus.pdf}:page_2"])] == [
        f"{corpus.pdf}:page_2"
    ]


def test_filters_pass_through_as_in_the_text_retrievers(
    retriever: LateInteractionPageRetriever, corpus: PageCorpus
) -> None:
    only_pdf = LateInteractionPageRetriever(
        index=retriever.index,
        similarity_top_k=10,
        filters=MetadataFilters(filters=[MetadataFilter(key="source", value=str(corpus.pdf))]),
    )
    results = only_pdf.retrieve(QUERY)
    assert {r.node.metadata["source"] for r in results} == {str(corpus.pdf)}
    assert len(results) == len(corpus.pages) - 1
    only_pdf.filters = MetadataFilters(filters=[MetadataFilter(key="kind", value="image")])
    assert [r.node.node_id for r in only_pdf.retrieve(QUERY)] == [f"{corpus.png}:page_1"]


def test_hybrid_page_retrieval_gives_image_nodes_with_stage_scores(
    retriever: LateInteractionPageRetriever, corpus: PageCorpus
) -> None:
    hybrid = LateInteractionPageRetriever(
        searcher=HybridSearcher.from_index(retriever.index, candidates_from="both"),
        similarity_top_k=len(corpus.pages),
    )
    assert hybrid.index is retriever.index
    results = hybrid.retrieve("train timetable for monday")
    assert all(isinstance(r.node, ImageNode) for r in results)
    by_id = {r.node.node_id: r.node for r in results}
    text_hit = by_id[f"{corpus.pdf}:page_3"]
    assert text_hit.metadata["bm25_rank"] == 1 and text_hit.metadata["bm25_score"] > 0
    assert "bm25_score" not in text_hit.get_content(MetadataMode.LLM)
    scan = by_id[f"{corpus.pdf}:page_4"]  # no text layer: found by its image vectors only
    assert scan.metadata["bm25_rank"] is None and scan.metadata["colbert_rank"] is not None


def test_delete_ref_doc_removes_every_page_of_a_file(corpus: PageCorpus) -> None:
    retriever = LateInteractionPageRetriever(corpus.pages, encoder=corpus.encoder)
    assert retriever.delete_ref_doc(str(corpus.pdf)) == len(corpus.pages) - 1
    assert retriever.index.ids == [f"{corpus.png}:page_1"]


def test_aretrieve_equals_retrieve(retriever: LateInteractionPageRetriever) -> None:
    sync = retriever.retrieve(QUERY)
    async_results = asyncio.run(retriever.aretrieve(QUERY))
    assert [(r.node.node_id, r.score) for r in async_results] == [
        (r.node.node_id, r.score) for r in sync
    ]


def test_image_nodes_with_a_file_can_be_inserted(corpus: PageCorpus) -> None:
    retriever = LateInteractionPageRetriever(encoder=corpus.encoder, similarity_top_k=5)
    node = ImageNode(image_path=str(corpus.png), text="a red box", id_="box", metadata={"n": 1})
    assert retriever.insert_nodes([node]) == ["box"]
    [result] = retriever.retrieve("red box")
    assert isinstance(result.node, ImageNode) and result.node.image_path == str(corpus.png)
    assert result.node.node_id == "box" and result.node.text == "a red box"
    assert result.node.metadata["n"] == 1
    in_memory = ImageNode(image=_png_base64(corpus), id_="mem")
    with pytest.raises(ValueError, match="image_path"):
        retriever.insert_nodes([in_memory])
    both = ImageNode(image=_png_base64(corpus), image_path=str(corpus.png), id_="both")
    assert retriever.insert_nodes([both]) == ["both"]
    assert retriever.get_nodes(["both"])[0].metadata["image_path"] == str(corpus.png)
    with pytest.raises(TypeError, match="from_files"):
        LateInteractionPageRetriever.from_documents([])


def test_rerank_scores_are_maxsim_over_the_page_vectors(
    retriever: LateInteractionPageRetriever, corpus: PageCorpus
) -> None:
    nodes = _shuffled(retriever.retrieve(QUERY))
    rerank = LateInteractionImageRerank(encoder=corpus.encoder, top_n=3)
    before = corpus.encoder.encode_stats()
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)
    assert (corpus.encoder.encode_stats() - before).documents == 0  # the index encoded them
    encoder = rerank.encoder
    vectors = encoder.encode_pages([page_from_node(n.node) for n in nodes])
    reference = maxsim_batch(encoder.encode_queries([QUERY]), vectors)[0]
    order = sorted(range(len(nodes)), key=lambda i: -reference[i])[:3]
    assert [n.node.node_id for n in out] == [nodes[i].node.node_id for i in order]
    assert [n.score for n in out] == pytest.approx([float(reference[i]) for i in order])
    assert all(out[i].node is nodes[j].node for i, j in enumerate(order))  # shared, not copied


def test_second_rerank_of_the_same_nodes_encodes_no_page(
    corpus: PageCorpus, tiny_page_encoder_path: Path, tmp_path: Path
) -> None:
    encoder = PageEncoder(tiny_page_encoder_path, cache=tmp_path / "cache")
    nodes = [NodeWithScore(node=_image_node(corpus), score=0.5)] + [
        NodeWithScore(node=TextNode(text=p.text, id_=p.id, metadata=p.metadata), score=0.1)
        for p in corpus.pages
        if p.metadata["kind"] == "pdf"  # found again from source and page
    ]
    rerank = LateInteractionImageRerank(encoder=encoder, top_n=10, keep_retrieval_score=True)
    before = encoder.encode_stats()
    first = rerank.postprocess_nodes(nodes, query_str=QUERY)
    middle = encoder.encode_stats()
    second = rerank.postprocess_nodes(nodes, query_str="a red box")
    assert (middle - before).documents == len(nodes)
    assert (encoder.encode_stats() - middle).documents == 0
    assert sorted(n.node.node_id for n in first) == sorted(n.node.node_id for n in second)
    assert {n.node.metadata["retrieval_score"] for n in first} == {0.5, 0.1}
    assert all("retrieval_score" not in n.node.metadata for n in nodes)  # inputs unchanged


def test_events_and_a_model_loaded_with_its_cache(
    corpus: PageCorpus, tiny_page_encoder_path: Path, tmp_path: Path
) -> None:
    seen: list[BaseEvent] = []

    class Collector(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "Collector"

        def handle(self, event: BaseEvent, **kwargs: Any) -> None:
            if isinstance(event, ReRankStartEvent | ReRankEndEvent):
                seen.append(event)

    rerank = LateInteractionImageRerank(
        model=str(tiny_page_encoder_path), top_n=1, cache_dir=tmp_path / "pv"
    )
    cache = rerank.encoder.cache
    assert isinstance(rerank.encoder, PageEncoder)
    assert isinstance(cache, MultivectorCache) and cache.directory == tmp_path / "pv"
    assert rerank.to_dict()["model"] == str(tiny_page_encoder_path)
    nodes = [NodeWithScore(node=_image_node(corpus)), NodeWithScore(node=_file_node(corpus))]
    root = get_dispatcher()
    collector = Collector()
    root.add_event_handler(collector)
    try:
        out = rerank.postprocess_nodes(nodes, query_str=QUERY)
    finally:
        root.event_handlers.remove(collector)
    start, end = seen
    assert isinstance(start, ReRankStartEvent) and isinstance(end, ReRankEndEvent)
    assert start.top_n == 1 and len(start.nodes) == 2
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in out]
    assert cache.stats().items == 1  # the same pixels twice: one page vector entry


def test_rerank_refusals(corpus: PageCorpus) -> None:
    rerank = LateInteractionImageRerank(encoder=corpus.encoder, top_n=2)
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    with pytest.raises(ValueError, match="query"):
        rerank.postprocess_nodes([NodeWithScore(node=_image_node(corpus))])
    with pytest.raises(ValueError, match="no image"):
        rerank.postprocess_nodes([NodeWithScore(node=TextNode(text="x"))], query_str=QUERY)
    with pytest.raises(TypeError, match="PageEncoder"):
        LateInteractionImageRerank(encoder=FakeEncoder())
    with pytest.raises(ValueError, match="model="):
        LateInteractionImageRerank()
    with pytest.raises(ValueError, match="top_n"):
        LateInteractionImageRerank(encoder=corpus.encoder, top_n=0)
    with pytest.raises(TypeError, match="PageEncoder"):
        LateInteractionPageRetriever(index=LateIndex(FakeEncoder()))
    with pytest.raises(ValueError, match="at most one"):
        LateInteractionPageRetriever(index=LateIndex(corpus.encoder), encoder=corpus.encoder)


def _image_node(corpus: PageCorpus) -> ImageNode:
    return ImageNode(image=_png_base64(corpus), id_="chart", text="")


def _file_node(corpus: PageCorpus) -> ImageNode:
    return ImageNode(image_path=str(corpus.png), id_="chart-file", text="")


def _png_base64(corpus: PageCorpus) -> str:
    return base64.b64encode(corpus.png.read_bytes()).decode("ascii")


def _shuffled(results: list[NodeWithScore]) -> list[NodeWithScore]:
    return results[1::2] + results[::2]
