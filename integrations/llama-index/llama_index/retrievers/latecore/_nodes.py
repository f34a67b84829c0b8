"""One LlamaIndex retriever over any latecore searcher: nodes in, nodes with scores out.

A node is stored the way LlamaIndex vector stores store it: the text that is
encoded is ``node.get_content(metadata_mode=MetadataMode.EMBED)``, and the whole
node travels in the metadata (``node_to_metadata_dict``), so a saved and
reloaded :class:`~latecore.LateIndex` gives back the same nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.ingestion import run_transformations
from llama_index.core.schema import (
    BaseNode,
    Document,
    IndexNode,
    MetadataMode,
    NodeWithScore,
    QueryBundle,
    TextNode,
    TransformComponent,
)
from llama_index.core.settings import Settings
from llama_index.core.vector_stores.types import MetadataFilters
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from llama_index.postprocessor.latecore import with_hidden_metadata
from typing_extensions import Self

from latecore import SearchHit
from latecore.searcher import Searcher
from latecore.validation import check_positive

from .filters import latecore_filter

__all__ = ["LateSearchRetriever", "node_from_record", "node_with_score"]

_NODE_CONTENT = "_node_content"

SearcherT = TypeVar("SearcherT", bound="Searcher[Any]")


def node_from_record(node_id: str, text: str, metadata: dict[str, Any]) -> BaseNode:
    """The node stored under ``node_id``.

    Documents added to the index by a LlamaIndex retriever come back whole; a
    document added directly through latecore becomes a :class:`TextNode`.
    """
    if _NODE_CONTENT in metadata:
        return metadata_dict_to_node(metadata)
    return TextNode(id_=node_id, text=text, metadata=metadata)


def node_with_score(hit: SearchHit) -> NodeWithScore:
    """The stored node of ``hit`` with its score; per-stage scores go into hidden metadata.

    A hybrid hit's ``stage_scores`` (``bm25_score``, ``bm25_rank``,
    ``colbert_score``, ``colbert_rank``) are added to a copy of the node's
    metadata, hidden from its embedding and LLM views (see
    :func:`~llama_index.postprocessor.latecore.with_hidden_metadata`).
    """
    node = node_from_record(hit.id, hit.text, hit.metadata)
    if hit.stage_scores:
        node = with_hidden_metadata(node, hit.stage_scores)
    return NodeWithScore(node=node, score=hit.score)


class LateSearchRetriever(BaseRetriever, Generic[SearcherT]):
    """A LlamaIndex retriever over a latecore searcher: the base of both latecore retrievers.

    Everything is here: inserting, deleting and getting nodes, and retrieval
    through ``searcher.search`` / ``searcher.asearch`` (``aretrieve`` never
    blocks the event loop). :class:`LateInteractionRetriever` and
    :class:`LateInteractionHybridRetriever` only build their searcher; this class
    also takes any :class:`latecore.searcher.Searcher` as it is.

    Parameters
    ----------
    nodes
        Nodes (or documents, used whole) to index.
    searcher
        The latecore searcher holding the nodes.
    similarity_top_k
        Number of nodes returned per query: a positive ``int`` (LlamaIndex's
        convention: ``0``, ``True``, ``1.5`` and ``"3"`` raise ``ValueError``).
        Can be changed later by assigning to it.
    filters
        LlamaIndex ``MetadataFilters`` every retrieval is restricted to, inside the
        searcher (see :mod:`llama_index.retrievers.latecore.filters` for how each
        operator maps; one without a latecore equivalent raises ``ValueError``
        here). Can be changed later by assigning to :attr:`filters`.
    callback_manager, objects, object_map, verbose
        As for any LlamaIndex :class:`BaseRetriever`.
    """

    def __init__(
        self,
        nodes: Sequence[BaseNode] | None = None,
        *,
        searcher: SearcherT,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        filters: MetadataFilters | None = None,
        callback_manager: CallbackManager | None = None,
        objects: list[IndexNode] | None = None,
        object_map: dict[str, Any] | None = None,
        verbose: bool = False,
    ) -> None:
        self.similarity_top_k = similarity_top_k
        self.filters = filters
        self._searcher = searcher
        super().__init__(
            callback_manager=callback_manager,
            object_map=object_map,
            objects=objects,
            verbose=verbose,
        )
        if nodes:
            self.insert_nodes(nodes)

    @property
    def similarity_top_k(self) -> int:
        """Number of nodes returned per query."""
        return self._similarity_top_k

    @similarity_top_k.setter
    def similarity_top_k(self, value: int) -> None:
        self._similarity_top_k = check_positive(value, "similarity_top_k")

    @property
    def filters(self) -> MetadataFilters | None:
        """The metadata filters of every retrieval (``None``: none)."""
        return self._filters

    @filters.setter
    def filters(self, value: MetadataFilters | None) -> None:
        self._latecore_filter = latecore_filter(value)  # refused now if latecore cannot express it
        self._filters = value

    @property
    def searcher(self) -> SearcherT:
        """The latecore searcher holding the nodes' texts, vectors and serialised nodes."""
        return self._searcher

    @classmethod
    def from_documents(
        cls,
        documents: Sequence[Document],
        *,
        transformations: Sequence[TransformComponent] | None = None,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> Self:
        """Split ``documents`` into nodes and build a retriever over them.

        Parameters
        ----------
        documents
            The documents to index.
        transformations
            Node parsers / transformations to run first; defaults to
            ``Settings.transformations`` (a sentence splitter), as
            ``VectorStoreIndex.from_documents`` does. No embedding model is needed.
        show_progress
            Show LlamaIndex's progress bar while transforming.
        **kwargs
            Passed to the constructor (``encoder``, ``model``, ``similarity_top_k``, ...).
        """
        nodes = run_transformations(
            list(documents),
            transformations if transformations is not None else Settings.transformations,
            show_progress=show_progress,
        )
        return cls(nodes=nodes, **kwargs)

    def insert_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Encode and add ``nodes``; a node whose id is already indexed is replaced.

        Returns
        -------
        list of str
            The node ids.
        """
        nodes = list(nodes)
        if not nodes:
            return []
        return self._searcher.add(
            [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes],
            ids=[n.node_id for n in nodes],
            metadatas=[
                node_to_metadata_dict(n, remove_text=False, flat_metadata=False) for n in nodes
            ],
        )

    def delete_nodes(self, node_ids: Sequence[str]) -> int:
        """Remove nodes by id (unknown ids are ignored); returns how many were removed."""
        if isinstance(node_ids, str):
            raise TypeError("delete_nodes takes a sequence of node ids; wrap a single id in a list")
        return self._searcher.delete(list(node_ids))

    def delete_ref_doc(self, ref_doc_id: str) -> int:
        """Remove every node that was split from the document ``ref_doc_id``.

        Returns
        -------
        int
            How many nodes were removed.
        """
        searcher = self._searcher
        doomed = [
            hit.id
            for hit in searcher.get(searcher.ids)
            if hit.metadata.get("ref_doc_id") == ref_doc_id
        ]
        return searcher.delete(doomed)

    def get_nodes(self, node_ids: Sequence[str]) -> list[BaseNode]:
        """The indexed nodes with these ids, in the order given (unknown ids are skipped)."""
        return [node_from_record(h.id, h.text, h.metadata) for h in self._searcher.get(node_ids)]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._searcher.search(query_bundle.query_str, self.similarity_top_k, **self._where)
        return [node_with_score(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self._searcher.asearch(
            query_bundle.query_str, self.similarity_top_k, **self._where
        )
        return [node_with_score(hit) for hit in hits]

    @property
    def _where(self) -> dict[str, Any]:
        """The search keywords of :attr:`filters`: none without filters."""
        return {} if self._latecore_filter is None else {"filter": self._latecore_filter}
