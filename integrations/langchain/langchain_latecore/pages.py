"""LangChain retriever over pages (PDF pages, images) encoded by a ColPali-style PageEncoder.

One :class:`~langchain_core.documents.Document` per page: ``page_content`` is
the page's text layer (``""`` for a scan), the metadata is what
``latecore.pages`` stores for the page (``source``, ``page``, ``image_path``
when the page image was saved, ``width``, ``height``, ``dpi``, ``kind``) plus
``relevance_score``. The page image itself is never in a document: get it back
with :meth:`LateInteractionPageRetriever.page_image`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from langchain_core.documents import Document
from pydantic import Field, field_validator
from typing_extensions import Self

from latecore import LateIndex
from latecore.base_encoder import BaseEncoder
from latecore.pages import PDF_DPI, Page, load_pages, page_image
from latecore.searcher import Searcher
from latecore.vision import PageEncoder, load_page_encoder

from ._convert import stored_document
from .retrievers import LateSearchRetriever

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL.Image import Image

__all__ = ["LateInteractionPageRetriever"]

PathsLike = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def _path_list(paths: PathsLike) -> list[str | os.PathLike[str]]:
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


class LateInteractionPageRetriever(LateSearchRetriever):
    """Retrieve pages (PDF pages, images) by ColPali-style late interaction over page images.

    A page is encoded once, when added, into one vector per image patch by a
    :class:`latecore.vision.PageEncoder` (through its cache: a page image seen
    before is not encoded again); a text query is scored against every stored
    page by exact MaxSim. No OCR and no chunking: scans, tables and charts are
    found by what they look like. ``k``, ``filter`` (on the page metadata, for
    example ``{"source": "report.pdf"}`` or ``{"page": {"$lte": 3}}``) and async
    are those of :class:`LateSearchRetriever`.

    Each returned :class:`Document` is one page: ``page_content`` is its text
    layer (``""`` when it has none), ``id`` is ``"{path}:page_{n}"``, and the
    metadata holds ``source``, ``page`` (1-based), ``image_path`` (the saved
    page image, or ``None``), ``width``, ``height``, ``dpi``, ``kind`` and
    ``relevance_score`` (the MaxSim score).

    Setup:
        ```bash
        pip install -U "langchain-latecore[vision]"
        ```

    Key init args:
        index: latecore.LateIndex
            An index of pages (its encoder a `latecore.vision.PageEncoder`): build
            one with `from_files` or `from_pages`, or load a saved one.
        k: int
            Number of pages to return (default 4).

    Instantiate:
        ```python
        from langchain_latecore import LateInteractionPageRetriever

        retriever = LateInteractionPageRetriever.from_files(
            ["report.pdf", "scan.png"],
            model="vidore/colqwen2-v1.0-hf",
            image_dir="page-images",  # keep each rendered page as a PNG
            k=3,
        )
        ```

    Usage:
        ```python
        docs = retriever.invoke("revenue by quarter", k=1)
        docs[0].metadata["source"], docs[0].metadata["page"]
        image = retriever.page_image(docs[0])  # a PIL image of the page
        ```

    Use within a chain:
        ```python
        def pages_as_images(docs):  # for a multimodal model: one image per page
            return [retriever.page_image(d) for d in docs]
        ```
    """

    index: LateIndex = Field(description="The latecore index of pages, searched by MaxSim.")

    _searcher_field: ClassVar[str] = "index"
    _searcher_class: ClassVar[Callable[..., Searcher[Any]]] = LateIndex

    @field_validator("index")
    @classmethod
    def _check_index(cls, index: LateIndex) -> LateIndex:
        if not isinstance(index.encoder, PageEncoder):
            raise ValueError(
                "LateInteractionPageRetriever needs an index whose encoder is a "
                f"latecore.vision.PageEncoder, got {type(index.encoder).__name__}; "
                "for text documents use LateInteractionRetriever"
            )
        return index

    @classmethod
    def from_pages(
        cls,
        pages: Iterable[Page],
        encoder: BaseEncoder | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        searcher_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Encode ``pages`` into a new index of pages and return a retriever over it.

        Parameters
        ----------
        pages
            :class:`latecore.pages.Page` objects (from ``latecore.pages.load_pages``).
        encoder
            A :class:`latecore.vision.PageEncoder`. Exclusive with ``model``.
        model
            A ColPali, ColQwen2 or ColModernVBert checkpoint (id or local path),
            loaded when no ``encoder`` is given.
        device
            Device of a loaded ``model`` (``None``: the CPU).
        cache_dir
            Page-vector cache of a loaded ``model``; ``None`` uses latecore's
            default, so indexing the same pages again does not re-encode them.
        searcher_kwargs
            Other options of :class:`latecore.LateIndex` (``dtype``, ``backend``, ...).
        **kwargs
            Fields of the retriever, such as ``k`` and ``filter``.
        """
        index = LateIndex(
            load_page_encoder(model, encoder=encoder, device=device, cache_dir=cache_dir),
            **(searcher_kwargs or {}),
        )
        index.add_pages(list(pages))
        return cls(index=index, **kwargs)

    @classmethod
    def from_files(
        cls,
        paths: PathsLike,
        encoder: BaseEncoder | None = None,
        *,
        dpi: int = PDF_DPI,
        image_dir: str | os.PathLike[str] | None = None,
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        searcher_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Load the pages of PDFs and images (directories are walked) and index them.

        ``dpi`` is the rendering resolution of PDF pages (default
        ``latecore.pages.PDF_DPI``); with ``image_dir`` each
        rendered page is saved there as a PNG and its ``image_path`` is set. The
        other parameters are those of :meth:`from_pages`.
        """
        pages = load_pages(_path_list(paths), dpi=dpi, image_dir=image_dir)
        return cls.from_pages(
            pages,
            encoder,
            model=model,
            device=device,
            cache_dir=cache_dir,
            searcher_kwargs=searcher_kwargs,
            **kwargs,
        )

    @classmethod
    def from_texts(cls, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: pages are images; use :meth:`from_files` or :meth:`from_pages`."""
        raise TypeError(
            "LateInteractionPageRetriever indexes page images: use from_files(paths) or "
            "from_pages(pages); for text use LateInteractionRetriever.from_texts"
        )

    @classmethod
    def from_documents(cls, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: pages are images; use :meth:`from_files` or :meth:`from_pages`."""
        cls.from_texts()

    def add_documents(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: pages are images; use :meth:`add_pages` or :meth:`add_files`."""
        raise TypeError(
            "LateInteractionPageRetriever indexes page images: use add_files(paths) or "
            "add_pages(pages)"
        )

    async def aadd_documents(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused, as :meth:`add_documents`."""
        self.add_documents()

    def add_pages(self, pages: Iterable[Page]) -> list[str]:
        """Encode and add pages (a page whose id is already indexed is replaced); their ids."""
        return self.index.add_pages(list(pages))

    async def aadd_pages(self, pages: Iterable[Page]) -> list[str]:
        """:meth:`add_pages` in a worker thread."""
        return await asyncio.to_thread(self.add_pages, list(pages))

    def add_files(
        self,
        paths: PathsLike,
        *,
        dpi: int = PDF_DPI,
        image_dir: str | os.PathLike[str] | None = None,
    ) -> list[str]:
        """Load, encode and add the pages of PDFs and images (as :meth:`from_files`)."""
        return self.add_pages(load_pages(_path_list(paths), dpi=dpi, image_dir=image_dir))

    @staticmethod
    def page_image(document: Document) -> Image:
        """The image of a returned page: its ``image_path``, else the page rendered again.

        Parameters
        ----------
        document
            A document returned by the retriever (what matters is its metadata).
        """
        return page_image(document.metadata)

    def get_by_ids(self, ids: Sequence[str]) -> list[Document]:
        """The stored pages with these ids as documents, in that order (unknown ids skipped)."""
        return [stored_document(hit) for hit in self.index.get(list(ids))]
