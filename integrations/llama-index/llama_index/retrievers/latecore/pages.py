"""LateInteractionPageRetriever: LlamaIndex retrieval of pages (PDF pages, images) as ImageNodes."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from llama_index.core.callbacks import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.schema import BaseNode, ImageNode, IndexNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters
from llama_index.postprocessor.latecore import (
    LAYOUT_KEYS,
    page_from_node,
    png_base64,
    with_hidden_metadata,
)
from typing_extensions import Self

from latecore import HybridSearcher, LateIndex, SearchHit
from latecore.base_encoder import BaseEncoder
from latecore.pages import PDF_DPI, Page, load_pages, page_image
from latecore.searcher import Searcher
from latecore.validation import check_positive
from latecore.vision import PageEncoder, load_page_encoder

from ._nodes import LateSearchRetriever

__all__ = ["LateInteractionPageRetriever", "page_node"]

PathsLike = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def page_node(hit: SearchHit) -> BaseNode:
    """The :class:`ImageNode` of a stored page: its text layer, metadata and image.

    The image is ``image_path`` when the page was saved as a file, else the page
    rendered again (``latecore.pages.page_image``) as a base64 PNG. The layout
    keys (``width``, ``height``, ``dpi``, ``kind``, ``image_path``) are hidden
    from the node's embedding and LLM views; ``source`` and ``page`` are not. A
    hybrid hit's per-stage scores (``bm25_score``, ``bm25_rank``,
    ``colbert_score``, ``colbert_rank``) are added to the metadata, hidden too.
    """
    metadata = copy.deepcopy(hit.metadata)
    hidden = [key for key in LAYOUT_KEYS if key in metadata]
    image: dict[str, Any]
    if metadata.get("image_path"):
        image = {"image_path": metadata["image_path"]}
    else:
        image = {"image": png_base64(page_image(metadata)), "image_mimetype": "image/png"}
    node = ImageNode(
        id_=hit.id,
        text=hit.text,
        metadata=metadata,
        excluded_embed_metadata_keys=hidden,
        excluded_llm_metadata_keys=hidden,
        **image,
    )
    return with_hidden_metadata(node, hit.stage_scores) if hit.stage_scores else node


def _path_list(paths: PathsLike) -> list[str | os.PathLike[str]]:
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


class LateInteractionPageRetriever(LateSearchRetriever[Searcher[Any]]):
    """Retrieve pages (PDF pages, images) as ImageNodes by ColPali-style late interaction.

    Each page is encoded once, when inserted, into one vector per image patch by
    a :class:`latecore.vision.PageEncoder` (through its cache: a page image seen
    before is not encoded again); a text query is scored against every stored
    page by exact MaxSim, so scans, tables and charts are found by what they
    look like. Each result is a ``NodeWithScore`` (the MaxSim score) holding an
    :class:`ImageNode`: ``text`` is the page's text layer (``""`` for a scan),
    the metadata is the page's (``source``, ``page``, ``image_path``, ``width``,
    ``height``, ``dpi``, ``kind``), and the image is ``image_path`` when the page
    was saved as a file (``image_dir=``), else the rendered page as a base64 PNG
    (``image``), ready for a multimodal LLM.

    With ``searcher=latecore.HybridSearcher.from_index(page_index)`` the search
    is hybrid: BM25 over the pages' text layers and MaxSim over their patches,
    fused; a scan without a text layer is still found by its image, and each
    node's metadata gets the per-stage scores (hidden from its embedding and LLM
    views).

    Parameters
    ----------
    pages
        :class:`latecore.pages.Page` objects to index (``latecore.pages.load_pages``).
    index
        An existing :class:`latecore.LateIndex` of pages (its encoder a
        ``PageEncoder``), for example one loaded with ``LateIndex.load``.
    searcher
        An existing latecore searcher over pages instead, for example a
        :class:`latecore.HybridSearcher` (exclusive with ``index`` and ``encoder``).
    encoder
        A :class:`latecore.vision.PageEncoder`; otherwise one is loaded for
        ``model`` with a page-vector cache in ``cache_dir``.
    model
        A ColPali, ColQwen2 or ColModernVBert checkpoint (id or local path).
    device
        Torch device of a loaded ``model`` (``None``: the CPU).
    cache_dir
        Page-vector cache directory; ``None`` uses latecore's default.
    similarity_top_k, filters, callback_manager, objects, object_map, verbose
        As for :class:`LateSearchRetriever`: ``filters`` (LlamaIndex
        ``MetadataFilters`` on the page metadata, for example
        ``MetadataFilter(key="source", value="report.pdf")``) are applied inside
        the search.

    Examples
    --------
    ::

        retriever = LateInteractionPageRetriever.from_files(
            ["report.pdf", "scan.png"], model="vidore/colqwen2-v1.0-hf", similarity_top_k=3
        )
        for scored in retriever.retrieve("revenue by quarter"):
            print(scored.score, scored.node.metadata["source"], scored.node.metadata["page"])
    """

    def __init__(
        self,
        pages: Iterable[Page] | None = None,
        *,
        index: LateIndex | None = None,
        searcher: Searcher[Any] | None = None,
        encoder: BaseEncoder | None = None,
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        filters: MetadataFilters | None = None,
        callback_manager: CallbackManager | None = None,
        objects: list[IndexNode] | None = None,
        object_map: dict[str, Any] | None = None,
        verbose: bool = False,
    ) -> None:
        if sum(given is not None for given in (index, searcher, encoder)) > 1:
            raise ValueError("pass at most one of index, searcher and encoder")
        check_positive(similarity_top_k, "similarity_top_k")  # before any model is loaded
        if searcher is None:
            searcher = index
        if searcher is None:
            searcher = LateIndex(
                load_page_encoder(model, encoder=encoder, device=device, cache_dir=cache_dir)
            )
        elif not isinstance(searcher.encoder, PageEncoder):
            raise TypeError(
                "LateInteractionPageRetriever needs a searcher whose encoder is a "
                f"latecore.vision.PageEncoder, got {type(searcher.encoder).__name__}; "
                "for text nodes use LateInteractionRetriever"
            )
        super().__init__(
            searcher=searcher,
            similarity_top_k=similarity_top_k,
            filters=filters,
            callback_manager=callback_manager,
            objects=objects,
            object_map=object_map,
            verbose=verbose,
        )
        if pages is not None:
            self.insert_pages(pages)

    @classmethod
    def from_files(
        cls,
        paths: PathsLike,
        *,
        dpi: int = PDF_DPI,
        image_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A retriever over the pages of PDFs and images (directories are walked).

        ``dpi`` is the rendering resolution of PDF pages (default
        ``latecore.pages.PDF_DPI``); with ``image_dir`` each
        rendered page is saved there as a PNG and becomes the node's
        ``image_path``. ``kwargs`` go to the constructor (``model``, ``encoder``,
        ``similarity_top_k``, ...).
        """
        check_positive(kwargs.get("similarity_top_k", 1), "similarity_top_k")
        return cls(load_pages(_path_list(paths), dpi=dpi, image_dir=image_dir), **kwargs)

    @classmethod
    def from_documents(cls, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: pages are images; use :meth:`from_files` or the constructor's ``pages``."""
        raise TypeError(
            "LateInteractionPageRetriever indexes page images: use from_files(paths) or "
            "LateInteractionPageRetriever(pages, ...); for text use LateInteractionRetriever"
        )

    @property
    def index(self) -> LateIndex:
        """The latecore index of pages (save it with ``retriever.index.save(path)``)."""
        searcher = self.searcher
        if isinstance(searcher, HybridSearcher):
            return searcher.index
        if not isinstance(searcher, LateIndex):
            raise TypeError(f"{type(searcher).__name__} holds no LateIndex of pages")
        return searcher

    def insert_pages(self, pages: Iterable[Page]) -> list[str]:
        """Encode and add pages (a page whose id is already indexed is replaced); their ids."""
        return self.index.add_pages(list(pages))

    def insert_files(
        self,
        paths: PathsLike,
        *,
        dpi: int = PDF_DPI,
        image_dir: str | os.PathLike[str] | None = None,
    ) -> list[str]:
        """Load, encode and add the pages of PDFs and images (as :meth:`from_files`)."""
        return self.insert_pages(load_pages(_path_list(paths), dpi=dpi, image_dir=image_dir))

    def insert_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Encode and add image nodes as pages (see ``page_from_node``); their ids.

        A node needs an image the index can find again: an ``image_path``, or the
        ``source`` and ``page`` metadata of a PDF page. The index stores
        metadata, never images, so a node whose image is only in memory (a
        base64 ``image`` alone) is refused with a ``ValueError``.
        """
        pages = [page_from_node(node) for node in nodes]
        missing = [p.id for p in pages if not p.metadata.get("image_path") and not _rendered(p)]
        if missing:
            raise ValueError(
                f"nodes {missing[:3]} have an image only in memory; the index stores "
                "metadata, never images: save each image and set image_path"
            )
        return self.insert_pages(pages)

    def get_nodes(self, node_ids: Sequence[str]) -> list[BaseNode]:
        """The indexed pages with these ids as image nodes, in that order (unknown: skipped)."""
        return [page_node(hit) for hit in self.index.get(node_ids)]

    def delete_ref_doc(self, ref_doc_id: str) -> int:
        """Remove every page of the file ``ref_doc_id`` (the pages' ``source``); how many."""
        doomed = [
            h.id for h in self.index.get(self.index.ids) if h.metadata.get("source") == ref_doc_id
        ]
        return self.searcher.delete(doomed)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.searcher.search(query_bundle.query_str, self.similarity_top_k, **self._where)
        return [NodeWithScore(node=page_node(hit), score=hit.score) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self.searcher.asearch(
            query_bundle.query_str, self.similarity_top_k, **self._where
        )
        return [NodeWithScore(node=page_node(hit), score=hit.score) for hit in hits]


def _rendered(page: Page) -> bool:
    """Whether ``page_image`` can render the page again from its metadata (a PDF page)."""
    return page.metadata.get("kind") == "pdf" and "source" in page.metadata
