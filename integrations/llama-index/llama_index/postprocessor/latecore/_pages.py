"""Pages and LlamaIndex nodes, public as ``llama_index.postprocessor.latecore.*``.

A page (:class:`latecore.pages.Page`) travels through LlamaIndex as an
:class:`~llama_index.core.schema.ImageNode`: its text is the page's text layer,
its metadata the page's (``source``, ``page``, ``image_path``, ...), its image
the file at ``image_path`` or, when the page was never saved as a file, the
rendered page as base64 PNG. :func:`page_from_node` turns such a node (or any
image node) back into a page, for encoding; every page component gets its
encoder from :func:`latecore.vision.load_page_encoder`.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING, Any

from llama_index.core.schema import BaseNode, ImageNode, MetadataMode

from latecore.pages import Page, load_image_pages, page_image

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["LAYOUT_KEYS", "page_from_node", "png_base64"]

LAYOUT_KEYS = ("width", "height", "dpi", "kind", "image_path")
"""Page metadata hidden from a page node's embedding and LLM views (``source`` and
``page`` stay visible: they are what a citation needs)."""


def png_base64(image: Image) -> str:
    """``image`` as a base64 PNG, the form of ``ImageNode.image``.

    Examples
    --------
    >>> from PIL import Image
    >>> png_base64(Image.new("RGB", (4, 3), "red"))[:12]
    'iVBORw0KGgoA'
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _decoded(node: ImageNode) -> Image:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        data = base64.b64decode(node.image or "", validate=True)
        with PILImage.open(io.BytesIO(data)) as opened:
            return opened.convert("RGB")
    except (binascii.Error, UnidentifiedImageError) as e:
        raise ValueError(f"node {node.node_id!r}: image is not a base64-encoded image") from e


def page_from_node(node: BaseNode) -> Page:
    """The page a node shows: its image, its text, its id and its metadata.

    The image is, in this order: an :class:`ImageNode`'s ``image`` (base64), its
    ``image_path``, else the page rendered again from ``source`` and ``page`` in
    the metadata (a node of :class:`~llama_index.retrievers.latecore.LateInteractionPageRetriever`).
    The page's metadata is the node's, with ``image_path`` added when the node has one.
    The same page image gives the same page vectors' cache key, so a page seen
    before (by an index or a reranker sharing the cache) is not encoded again.

    Raises
    ------
    ValueError
        If the node has no image latecore can read (an ``image_url`` only is
        refused: latecore does not download; save the image and set ``image_path``).

    Examples
    --------
    >>> from PIL import Image
    >>> node = ImageNode(image=png_base64(Image.new("RGB", (4, 3))), text="a scan", id_="s1")
    >>> page = page_from_node(node)
    >>> page.id, page.text, page.image.size
    ('s1', 'a scan', (4, 3))
    >>> page_from_node(ImageNode(image_url="https://example.com/p.png", id_="u"))
    Traceback (most recent call last):
    ...
    ValueError: node 'u' has no image latecore can read: give it image (base64) or image_path, or source and page metadata of a PDF page (image_url is not downloaded)
    """  # noqa: E501
    metadata: dict[str, Any] = dict(node.metadata)
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    if isinstance(node, ImageNode) and node.image_path:
        metadata.setdefault("image_path", node.image_path)
    if isinstance(node, ImageNode) and node.image:
        image = _decoded(node)
    elif isinstance(node, ImageNode) and node.image_path:
        loaded = load_image_pages(node.image_path)[0]
        image, metadata = loaded.image, {**loaded.metadata, **metadata}
    elif "source" in metadata and "page" in metadata:
        image = page_image(metadata)
    else:
        raise ValueError(
            f"node {node.node_id!r} has no image latecore can read: give it image "
            "(base64) or image_path, or source and page metadata of a PDF page"
            + (" (image_url is not downloaded)" if getattr(node, "image_url", None) else "")
        )
    return Page(id=node.node_id, text=text, image=image, metadata=metadata)
