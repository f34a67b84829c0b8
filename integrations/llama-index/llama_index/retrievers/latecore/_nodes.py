"""Nodes in and out of a latecore index, and the insert/delete API both retrievers share.

A node is stored the way LlamaIndex vector stores store it: the text that is
encoded is ``node.get_content(metadata_mode=MetadataMode.EMBED)``, and the whole
node travels in the metadata (``node_to_metadata_dict``), so a saved and
reloaded :class:`~latecore.LateIndex` gives back the same nodes.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.ingestion import run_transformations
from llama_index.core.schema import (
    BaseNode,
    Document,
    IndexNode,
    MetadataMode,
    TextNode,
    TransformComponent,
)
from llama_index.core.settings import Settings
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from typing_extensions import Self

from latecore import LateIndex

__all__ = ["LateRetrieverBase", "check_top_k", "node_from_record"]

_NODE_CONTENT = "_node_content"


def node_from_record(node_id: str, text: str, metadata: dict[str, Any]) -> BaseNode:
    """The node stored under ``node_id``.

    Documents added to the index by a LlamaIndex retriever come back whole; a
    document added directly through latecore becomes a :class:`TextNode`.
    """
    if _NODE_CONTENT in metadata:
        return metadata_dict_to_node(metadata)
    return TextNode(id_=node_id, text=text, metadata=metadata)


def check_top_k(similarity_top_k: int) -> None:
    """Reject a ``similarity_top_k`` below 1 (before any model is loaded)."""
    if similarity_top_k < 1:
        raise ValueError(f"similarity_top_k must be at least 1, got {similarity_top_k}")


class LateRetrieverBase(BaseRetriever):
    """Insertion and deletion of nodes for retrievers over a :class:`~latecore.LateIndex`.

    Subclasses check their arguments (:func:`check_top_k`) and set up their
    backend, then call this constructor, which inserts ``nodes``. They provide
    :meth:`_add` and :meth:`_delete` (the backend's own ``add``/``delete``),
    :attr:`index`, and the retrieval itself.
    """

    def __init__(
        self,
        nodes: Sequence[BaseNode] | None = None,
        *,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        callback_manager: CallbackManager | None = None,
        objects: list[IndexNode] | None = None,
        object_map: dict[str, Any] | None = None,
        verbose: bool = False,
    ) -> None:
        self.similarity_top_k = similarity_top_k
        super().__init__(
            callback_manager=callback_manager,
            object_map=object_map,
            objects=objects,
            verbose=verbose,
        )
        if nodes:
            self.insert_nodes(nodes)

    @property
    @abstractmethod
    def index(self) -> LateIndex:
        """The latecore index holding the nodes' texts, vectors and serialised nodes."""

    @abstractmethod
    def _add(
        self, texts: list[str], ids: list[str], metadatas: list[dict[str, Any]]
    ) -> list[str]: ...

    @abstractmethod
    def _delete(self, ids: list[str]) -> int: ...

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
        return self._add(
            [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes],
            [n.node_id for n in nodes],
            [node_to_metadata_dict(n, remove_text=False, flat_metadata=False) for n in nodes],
        )

    def delete_nodes(self, node_ids: Sequence[str]) -> int:
        """Remove nodes by id (unknown ids are ignored); returns how many were removed."""
        if isinstance(node_ids, str):
            raise TypeError("delete_nodes takes a sequence of node ids; wrap a single id in a list")
        return self._delete(list(node_ids))

    def delete_ref_doc(self, ref_doc_id: str) -> int:
        """Remove every node that was split from the document ``ref_doc_id``.

        Returns
        -------
        int
            How many nodes were removed.
        """
        index = self.index
        doomed = [
            hit.id for hit in index.get(index.ids) if hit.metadata.get("ref_doc_id") == ref_doc_id
        ]
        return self._delete(doomed)

    def get_nodes(self, node_ids: Sequence[str]) -> list[BaseNode]:
        """The indexed nodes with these ids, in the order given (unknown ids are skipped)."""
        return [node_from_record(h.id, h.text, h.metadata) for h in self.index.get(list(node_ids))]
