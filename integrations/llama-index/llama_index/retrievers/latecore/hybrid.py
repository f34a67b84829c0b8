"""LateInteractionHybridRetriever: BM25 and ColBERT candidates, exact MaxSim, fusion (latecore)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.schema import BaseNode, IndexNode
from llama_index.core.vector_stores.types import MetadataFilters

from latecore import HybridSearcher, LateIndex, load_encoder
from latecore.base_encoder import BaseEncoder
from latecore.validation import check_positive

from ._nodes import LateSearchRetriever

__all__ = ["LateInteractionHybridRetriever"]


class LateInteractionHybridRetriever(LateSearchRetriever[HybridSearcher]):
    """BM25 and ColBERT nominate, exact MaxSim scores, fusion: :class:`latecore.HybridSearcher`.

    ``NodeWithScore.score`` is the fused score. Every stage's score and rank are
    in the returned node's metadata: ``bm25_score``, ``bm25_rank``,
    ``colbert_score``, ``colbert_rank`` (``None`` where a stage did not nominate
    the node; hidden from the embedding and LLM views of the node, so prompts
    and reranker cache keys do not change). BM25 and
    ColBERT both read ``get_content(metadata_mode=MetadataMode.EMBED)``.
    Inserting, deleting and retrieving are those of :class:`LateSearchRetriever`.

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
    similarity_top_k, filters, callback_manager, objects, object_map, verbose
        As for :class:`LateSearchRetriever` (``similarity_top_k`` is at least 1;
        ``filters`` are LlamaIndex ``MetadataFilters``, applied inside the search).
    **searcher_kwargs
        :class:`latecore.HybridSearcher` settings: ``candidates`` (nominated
        by each stage, default 100), ``candidates_from`` (``"auto"``,
        ``"both"`` or ``"bm25"``), ``fusion`` (``"adaptive"``, the default,
        ``"rerank"``, ``"rrf"`` or ``"linear"``), ``rrf_k``, ``alpha``,
        ``normalization``, ``language`` (``"english"``: its
        stopwords and stemmer), ``stopwords``, ``stemmer``.

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
    >>> sorted(k for k in retriever.retrieve("where is paris")[0].node.metadata if "rank" in k)
    ['bm25_rank', 'colbert_rank']
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
        filters: MetadataFilters | None = None,
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
        check_positive(similarity_top_k, "similarity_top_k")  # before any model is loaded
        if searcher is None:
            if index is not None:
                searcher = HybridSearcher.from_index(index, **searcher_kwargs)
            else:
                encoder = load_encoder(model, encoder=encoder, device=device, cache_dir=cache_dir)
                searcher = HybridSearcher(encoder, **searcher_kwargs)
        super().__init__(
            nodes,
            searcher=searcher,
            similarity_top_k=similarity_top_k,
            filters=filters,
            callback_manager=callback_manager,
            objects=objects,
            object_map=object_map,
            verbose=verbose,
        )

    @property
    def index(self) -> LateIndex:
        """The searcher's latecore index."""
        return self.searcher.index
