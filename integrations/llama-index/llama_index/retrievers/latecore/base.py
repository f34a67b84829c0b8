"""LateInteractionRetriever: LlamaIndex retrieval over a latecore LateIndex (exact MaxSim)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.schema import BaseNode, IndexNode
from llama_index.core.vector_stores.types import MetadataFilters

from latecore import LateIndex, load_encoder
from latecore.base_encoder import BaseEncoder
from latecore.validation import check_positive

from ._nodes import LateSearchRetriever

__all__ = ["LateInteractionRetriever"]


class LateInteractionRetriever(LateSearchRetriever[LateIndex]):
    """Retrieve nodes by ColBERT late interaction: exact MaxSim over every indexed node.

    Nodes are encoded once, when inserted, and kept in a :class:`latecore.LateIndex`
    (token vectors packed in memory); a query costs one query encode and one pass
    over the packed vectors. Node text is ``get_content(metadata_mode=MetadataMode.EMBED)``.
    Inserting, deleting and retrieving are those of :class:`LateSearchRetriever`.

    Parameters
    ----------
    nodes
        Nodes (or documents, used whole) to index.
    index
        An existing :class:`latecore.LateIndex`, for example one loaded with
        ``LateIndex.load``; ``nodes`` are added to it. Its encoder is used.
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

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> from llama_index.core.schema import TextNode
    >>> retriever = LateInteractionRetriever(
    ...     [TextNode(text="paris is in france", id_="p"), TextNode(text="berlin", id_="b")],
    ...     encoder=FakeEncoder(),
    ...     similarity_top_k=1,
    ... )
    >>> [n.node_id for n in retriever.retrieve("where is paris")]
    ['p']
    >>> retriever.delete_nodes(["p"])
    1
    >>> [n.node_id for n in retriever.retrieve("where is paris")]
    ['b']
    """

    def __init__(
        self,
        nodes: Sequence[BaseNode] | None = None,
        *,
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
    ) -> None:
        if index is not None and encoder is not None:
            raise ValueError("pass either index or encoder, not both (an index has its encoder)")
        check_positive(similarity_top_k, "similarity_top_k")  # before any model is loaded
        if index is None:
            index = LateIndex(
                load_encoder(model, encoder=encoder, device=device, cache_dir=cache_dir)
            )
        super().__init__(
            nodes,
            searcher=index,
            similarity_top_k=similarity_top_k,
            filters=filters,
            callback_manager=callback_manager,
            objects=objects,
            object_map=object_map,
            verbose=verbose,
        )

    @property
    def index(self) -> LateIndex:
        """The latecore index (save it with ``retriever.index.save(path)``)."""
        return self.searcher
