"""Pages as documents: PDF pages and image files turned into :class:`Page` values.

A :class:`Page` is one rendered page image (RGB, through ``pypdfium2`` for PDFs,
``PIL`` for PNG and JPEG files), its text layer (``""`` for a scan or an image)
and JSON-serialisable metadata saying where it came from. Pages go into a
:class:`~latecore.index.LateIndex` with :meth:`~latecore.index.LateIndex.add_pages`,
encoded by a :class:`~latecore.vision.PageEncoder`; an index stores metadata and
never images, and :func:`page_image` gets a page's image back from its metadata.
``pypdfium2`` and ``PIL`` (the ``latecore[vision]`` extra) are imported only
inside the functions that need them.

Examples
--------
>>> import tempfile
>>> from latecore.testing.vision import make_test_pdf
>>> tmp = tempfile.TemporaryDirectory()
>>> pdf = make_test_pdf(Path(tmp.name) / "report.pdf", ["bees make honey", None])
>>> pages = load_pdf_pages(pdf, dpi=48)
>>> [(Path(p.id).name, p.text, p.metadata["page"]) for p in pages]
[('report.pdf:page_1', 'bees make honey', 1), ('report.pdf:page_2', '', 2)]
>>> pages[0].image.size == (pages[0].metadata["width"], pages[0].metadata["height"])
True
>>> tmp.cleanup()
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .searcher import check_documents
from .validation import check_positive

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = [
    "IMAGE_SUFFIXES",
    "PAGE_SUFFIXES",
    "PDF_DPI",
    "Page",
    "image_digest",
    "load_image_pages",
    "load_pages",
    "load_pdf_pages",
    "page_documents",
    "page_image",
]

PDF_DPI = 96
"""Default resolution PDF pages are rendered at (an A4 page: 794 x 1123 pixels)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Image files :func:`load_pages` reads, each as a one-page document."""

PAGE_SUFFIXES = (".pdf", *IMAGE_SUFFIXES)
"""Every file type :func:`load_pages` reads."""

_VISION_HINT = "install the vision extra: pip install 'latecore[vision]'"


def image_digest(image: Image.Image) -> str:
    """SHA-256 (hex) over an image's mode, size and raw pixel bytes.

    Two images with the same pixels share a digest whatever file format they came
    from; one changed pixel changes it.

    Examples
    --------
    >>> from PIL import Image
    >>> white = Image.new("RGB", (4, 3), "white")
    >>> dotted = white.copy()
    >>> dotted.putpixel((0, 0), (0, 0, 0))
    >>> image_digest(white) == image_digest(white.copy())
    True
    >>> image_digest(white) == image_digest(dotted)
    False
    """
    digest = hashlib.sha256()
    digest.update(f"{image.mode}\0{image.width}x{image.height}\0".encode("ascii"))
    digest.update(image.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Page:
    """One page: its id, text layer, rendered image (RGB) and metadata.

    ``metadata`` holds ``source`` (the file), ``page`` (1-based), ``width`` and
    ``height`` (pixels), ``dpi`` (``None`` for image files), ``image_path`` (a
    PNG or JPEG of the page, or ``None``) and ``kind`` (``"pdf"`` or
    ``"image"``); it is JSON-serialisable, so an index can store it.

    Examples
    --------
    >>> from PIL import Image
    >>> page = Page("scan.png:page_1", "", Image.new("RGB", (8, 8), "white"), {"page": 1})
    >>> page.id, len(page.image_digest())
    ('scan.png:page_1', 64)
    """

    id: str
    text: str
    image: Image.Image = field(repr=False, compare=False)
    metadata: dict[str, Any] = field(default_factory=dict)

    def image_digest(self) -> str:
        """SHA-256 over the image's mode, size and pixel bytes (see :func:`image_digest`)."""
        return image_digest(self.image)


def _pdfium() -> Any:
    try:
        import pypdfium2
    except ImportError as error:  # pragma: no cover - the extra is installed in tests
        raise ImportError(f"reading PDF pages needs pypdfium2: {_VISION_HINT}") from error
    return pypdfium2


def _render(page: Any, dpi: int) -> Image.Image:
    image = page.render(scale=dpi / 72).to_pil()
    return image if image.mode == "RGB" else image.convert("RGB")


def _page_text(page: Any) -> str:
    textpage = page.get_textpage()
    try:
        return str(textpage.get_text_range()).replace("\r\n", "\n").strip()
    finally:
        textpage.close()


def _open_pdf(path: Path) -> Any:
    pdfium = _pdfium()
    try:
        return pdfium.PdfDocument(str(path))
    except (OSError, pdfium.PdfiumError) as error:
        raise InputError(f"{path}: cannot read it as a PDF ({error})") from error


def _save_png(image: Image.Image, image_dir: Path, name: str) -> str:
    image_dir.mkdir(parents=True, exist_ok=True)
    target = image_dir / name
    image.save(target, format="PNG")
    return str(target)


def load_pdf_pages(
    path: str | os.PathLike[str],
    *,
    dpi: int = PDF_DPI,
    image_dir: str | os.PathLike[str] | None = None,
) -> list[Page]:
    """Every page of a PDF, rendered at ``dpi`` with its text layer.

    Parameters
    ----------
    path
        The PDF file.
    dpi
        Rendering resolution (pixels per inch), a positive integer.
    image_dir
        Where to save each page as PNG (``<file stem>_page_<n>.png``); its path
        goes into ``metadata["image_path"]``. ``None``: images stay in memory and
        :func:`page_image` re-renders them from the PDF.

    Returns
    -------
    list of Page
        In page order; ids ``"<path>:page_<n>"``, ``n`` from 1.

    Raises
    ------
    InputError
        If ``path`` is missing or is not a readable PDF.
    """
    dpi = check_positive(dpi, "dpi")
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    document = _open_pdf(path)
    pages = []
    try:
        for number in range(1, len(document) + 1):
            pdf_page = document[number - 1]
            try:
                image, text = _render(pdf_page, dpi), _page_text(pdf_page)
            finally:
                pdf_page.close()
            image_path = (
                None
                if image_dir is None
                else _save_png(image, Path(image_dir), f"{path.stem}_page_{number}.png")
            )
            metadata = {
                "source": str(path),
                "page": number,
                "width": image.width,
                "height": image.height,
                "dpi": dpi,
                "image_path": image_path,
                "kind": "pdf",
            }
            pages.append(Page(f"{path}:page_{number}", text, image, metadata))
    finally:
        document.close()
    return pages


def _read_image(path: Path) -> Image.Image:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as error:  # pragma: no cover - the extra is installed in tests
        raise ImportError(f"reading page images needs Pillow: {_VISION_HINT}") from error
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"{path}: cannot read it as an image ({error})") from error


def load_image_pages(path: str | os.PathLike[str]) -> list[Page]:
    """A PNG or JPEG file as a one-page document (``image_path`` is the file itself).

    Raises
    ------
    InputError
        If ``path`` is missing or is not a readable image.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> tmp = tempfile.TemporaryDirectory()
    >>> file = Path(tmp.name) / "scan.png"
    >>> Image.new("RGB", (30, 20), "white").save(file)
    >>> (page,) = load_image_pages(file)
    >>> Path(page.id).name, page.text, page.metadata["kind"], page.metadata["dpi"]
    ('scan.png:page_1', '', 'image', None)
    >>> tmp.cleanup()
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    image = _read_image(path)
    metadata = {
        "source": str(path),
        "page": 1,
        "width": image.width,
        "height": image.height,
        "dpi": None,
        "image_path": str(path),
        "kind": "image",
    }
    return [Page(f"{path}:page_1", "", image, metadata)]


def _page_files(paths: Sequence[str | os.PathLike[str]]) -> Iterator[Path]:
    if isinstance(paths, str | os.PathLike):
        raise TypeError("paths must be a sequence of paths, not one path: pass [path]")
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PAGE_SUFFIXES
            )
        elif path.is_file():
            if path.suffix.lower() not in PAGE_SUFFIXES:
                raise InputError(
                    f"{path}: unsupported file type; pages are read from "
                    f"{', '.join(PAGE_SUFFIXES)} files"
                )
            yield path
        else:
            raise InputError(f"{path}: no such file or directory")


def load_pages(
    paths: Sequence[str | os.PathLike[str]],
    *,
    dpi: int = PDF_DPI,
    image_dir: str | os.PathLike[str] | None = None,
) -> list[Page]:
    """The pages of every PDF and image file in ``paths`` (folders walked, files sorted).

    PDFs go through :func:`load_pdf_pages` (``dpi``, ``image_dir``), PNG and JPEG
    files through :func:`load_image_pages`; other files in a folder are skipped,
    a file reached twice is read once.

    Raises
    ------
    InputError
        For a missing path, a file type not in :data:`PAGE_SUFFIXES` named
        directly, or a file that cannot be read.
    """
    pages: list[Page] = []
    seen: set[Path] = set()
    for path in _page_files(paths):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if path.suffix.lower() == ".pdf":
            pages.extend(load_pdf_pages(path, dpi=dpi, image_dir=image_dir))
        else:
            pages.extend(load_image_pages(path))
    return pages


def page_image(metadata: Mapping[str, Any]) -> Image.Image:
    """A page's image again from its stored metadata (what an index or a retriever keeps).

    Reads ``metadata["image_path"]`` when it is set, else renders page
    ``metadata["page"]`` of the PDF ``metadata["source"]`` at ``metadata["dpi"]``.

    Raises
    ------
    InputError
        If the metadata names neither an image file nor a PDF page, or the file is gone.

    Examples
    --------
    >>> import tempfile
    >>> from latecore.testing.vision import make_test_pdf
    >>> tmp = tempfile.TemporaryDirectory()
    >>> (page,) = load_pdf_pages(make_test_pdf(Path(tmp.name) / "a.pdf", ["one"]), dpi=40)
    >>> image_digest(page_image(page.metadata)) == page.image_digest()
    True
    >>> tmp.cleanup()
    """
    image_path = metadata.get("image_path")
    if image_path:
        return _read_image(Path(str(image_path)))
    source, number, dpi = metadata.get("source"), metadata.get("page"), metadata.get("dpi")
    if not source or not isinstance(number, int) or not isinstance(dpi, int):
        raise InputError(
            "page metadata needs 'image_path', or 'source', 'page' and 'dpi' of a PDF page "
            f"(as load_pdf_pages writes them); got keys {sorted(metadata)}"
        )
    path = Path(str(source))
    if not path.is_file():
        raise InputError(f"{path}: no such file (the page's source PDF moved or was deleted)")
    document = _open_pdf(path)
    try:
        if not 1 <= number <= len(document):
            raise InputError(f"{path} has {len(document)} pages; there is no page {number}")
        pdf_page = document[number - 1]
        try:
            return _render(pdf_page, dpi)
        finally:
            pdf_page.close()
    finally:
        document.close()


def page_documents(
    encoder: Any, pages: Sequence[Page]
) -> tuple[list[str], list[str], list[dict[str, Any]], Callable[[], list[np.ndarray]]]:
    """Ids, texts and metadata of ``pages`` as :meth:`LateIndex.add_pages
    <latecore.index.LateIndex.add_pages>` stores them, and the call that encodes them.

    Everything is checked before anything is encoded.

    Raises
    ------
    TypeError
        If ``encoder`` cannot encode pages (it is not a
        :class:`~latecore.vision.PageEncoder`), or an item is not a :class:`Page`.
    ValueError
        If a page id repeats.
    """
    encode_pages = getattr(encoder, "encode_pages", None)
    if encode_pages is None:
        raise TypeError(
            f"{type(encoder).__name__} encodes texts, not page images: build the index with a "
            "latecore.vision.PageEncoder to add pages"
        )
    if isinstance(pages, Page) or not all(isinstance(p, Page) for p in pages):
        raise TypeError("add_pages takes a sequence of latecore.pages.Page (see load_pages)")
    pages = list(pages)
    texts, ids, metas = check_documents(
        [p.text for p in pages], [p.id for p in pages], [p.metadata for p in pages]
    )
    return ids, texts, [dict(m) for m in metas], lambda: list(encode_pages(pages))
