"""LateInteractionHybridRetriever: BM25 candidates reranked by ColBERT, through latecore."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.schema import BaseNode, IndexNode, NodeWithScore, QueryBundle
from llama_index.postprocessor.latecore._shared import with_hidden_metadata

from latecore import BaseEncoder, HybridHit, HybridSearcher, LateIndex, load_encoder

from ._nodes import LateRetrieverBase, check_top_k, node_from_record

__all__ = ["LateInteractionHybridRetriever"]


class LateInteractionHybridRetriever(LateRetrieverBase):
    """BM25 candidates, reranked by ColBERT (exact MaxSim), fused: :class:`latecore.HybridSearcher`.

    ``NodeWithScore.score`` is the fused score. Every stage's score and rank are
    in the returned node's metadata: ``bm25_score``, ``bm25_rank``,
    ``colbert_score``, ``colbert_rank`` (hidden from the embedding and LLM views
    of the node, so prompts and reranker cache keys do not change). BM25 and
    ColBERT both read ``get_content(metadata_mode=MetadataMode.EMBED)``.

    Parameters
    ----------
    nodes
        Nodes (or documents, used whole) to index.
    searcher
        An existing :class:`latecore.HybridSearcher`; ``nodes`` are added to it.
    index
        An existing :class:`latecore.LateIndex` to search (a BM25 index is built
        over its documents); exclusive with ``searcher`` and ``encoder``.
    encoder
        An already-built latecore encoder; otherwise one is loaded for ``model``
        with a disk cache in ``cache_dir``.
    model
        ColBERT model id or local checkpoint (``None``: latecore's default).
    device
        Torch device for the model; ``None`` picks CUDA when available.
    cache_dir
        Multivector cache directory; ``None`` uses latecore's default.
    similarity_top_k
        Number of nodes returned per query.
    callback_manager, objects, object_map, verbose
        As for any LlamaIndex :class:`BaseRetriever`.
    **searcher_kwargs
        :class:`latecore.HybridSearcher` settings: ``candidates`` (BM25
        candidates reranked, default 100), ``fusion`` (``"rerank"``, ``"rrf"``
        or ``"linear"``), ``rrf_k``, ``alpha``, ``stopwords``, ``stemmer``.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> from llama_index.core.schema import TextNode
    >>> retriever = LateInteractionHybridRetriever(
    ...     [TextNode(text="paris is in france", id_="p"), TextNode(text="berlin", id_="b")],
    ...     encoder=FakeEncoder(),
    ...     similarity_top_k=1,
    ... )
    >>> [n.node_id for n in retriever.retrieve("where is paris")]
    ['p']
    """

    def __init__(
        self,
        nodes: Sequence[BaseNode] | None = None,
        *,
        searcher: HybridSearcher | None = None,
        index: LateIndex | None = None,
        encoder: BaseEncoder | None = None,
        model: str | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        callback_manager: CallbackManager | None = None,
        objects: list[IndexNode] | None = None,
        object_map: dict[str, Any] | None = None,
        verbose: bool = False,
        **searcher_kwargs: Any,
    ) -> None:
        if sum(given is not None for given in (searcher, index, encoder)) > 1:
            raise ValueError("pass at most one of searcher, index and encoder")
        if searcher is not None and searcher_kwargs:
            raise ValueError(
                f"{sorted(searcher_kwargs)} would be ignored: the searcher is already built"
            )
        check_top_k(similarity_top_k)
        if searcher is None:
            if index is not None:
                searcher = HybridSearcher.from_index(index, **searcher_kwargs)
            else:
                encoder = load_encoder(model, encoder=encoder, device=device, cache_dir=cache_dir)
                searcher = HybridSearcher(encoder, **searcher_kwargs)
        self._searcher = searcher
        super().__init__(
            nodes,
            similarity_top_k=similarity_top_k,
            callback_manager=callback_manager,
            objects=objects,
            object_map=object_map,
            verbose=verbose,
        )

    @property
    def searcher(self) -> HybridSearcher:
        """The latecore hybrid searcher."""
        return self._searcher

    @property
    def index(self) -> LateIndex:
        """The searcher's latecore index."""
        return self._searcher.index

    def _add(self, texts: list[str], ids: list[str], metadatas: list[dict[str, Any]]) -> list[str]:
        return self._searcher.add(texts, ids=ids, metadatas=metadatas)

    def _delete(self, ids: list[str]) -> int:
        return self._searcher.delete(ids)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._searcher.search(query_bundle.query_str, k=self.similarity_top_k)
        return [_to_node(h) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self._searcher.asearch(query_bundle.query_str, k=self.similarity_top_k)
        return [_to_node(h) for h in hits]


def _to_node(hit: HybridHit) -> NodeWithScore:
    node = node_from_record(hit.id, hit.text, hit.metadata)
    stages = {
        "bm25_score": hit.bm25_score,
        "bm25_rank": hit.bm25_rank,
        "colbert_score": hit.colbert_score,
        "colbert_rank": hit.colbert_rank,
    }
    return NodeWithScore(node=with_hidden_metadata(node, stages), score=hit.score)
