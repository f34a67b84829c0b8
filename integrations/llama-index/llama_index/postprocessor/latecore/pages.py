"""LateInteractionImageRerank: rerank LlamaIndex image nodes by MaxSim over cached page vectors."""

from __future__ import annotations

import os
from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import NodeWithScore

from latecore.base_encoder import BaseEncoder
from latecore.maxsim import maxsim_batch, top_k
from latecore.validation import check_positive
from latecore.vision import PageEncoder, load_page_encoder

from ._pages import page_from_node
from .base import MaxSimRerankFrame

__all__ = ["LateInteractionImageRerank"]

dispatcher = instrument.get_dispatcher(__name__)


class LateInteractionImageRerank(MaxSimRerankFrame):
    """Rerank image nodes (pages) by ColPali-style late interaction, with cached page vectors.

    Each node's page image (its ``image``, its ``image_path``, or the PDF page
    named by its ``source`` and ``page`` metadata: see ``page_from_node``) is
    encoded by a :class:`latecore.vision.PageEncoder` through its cache, keyed
    by the image's pixels: a page seen before, by any query, by this reranker or
    by an index sharing the cache, is not encoded again (unlike rerankers that
    re-encode every image on every query), so a warm rerank costs one query
    encode and one MaxSim. The score is exact MaxSim of the query against the
    page's patch vectors.

    The returned :class:`NodeWithScore` objects are new and share the input
    nodes unless ``keep_retrieval_score`` is set (then each holds a copy with
    ``metadata["retrieval_score"]``, hidden from the embedding and LLM views).
    Input nodes are never modified.

    Parameters
    ----------
    model
        A ColPali, ColQwen2 or ColModernVBert checkpoint (id or local path),
        loaded when no ``encoder`` is given; with one it only names the model in
        events.
    top_n
        Number of nodes returned: a positive ``int``.
    keep_retrieval_score
        Keep each node's incoming score in ``metadata["retrieval_score"]``.
    device
        Torch device of a loaded ``model`` (``None``: the CPU).
    cache_dir
        Page-vector cache directory; ``None`` uses latecore's default. A given
        ``encoder`` without a cache gets one here (a reranker always caches).
    encoder
        A :class:`latecore.vision.PageEncoder` to use instead of loading
        ``model`` (for example the one of a ``LateInteractionPageRetriever``).
    **kwargs
        Other :class:`BaseNodePostprocessor` fields (``callback_manager``).

    Examples
    --------
    ::

        rerank = LateInteractionImageRerank(model="vidore/colqwen2-v1.0-hf", top_n=3)
        best = rerank.postprocess_nodes(image_nodes, query_str="revenue by quarter")
    """

    model: str = Field(description="Page model id or local checkpoint directory.")
    top_n: int = Field(default=5, description="Number of nodes to return (at least 1).")
    keep_retrieval_score: bool = Field(
        default=False,
        description="Keep the incoming score in the node's metadata['retrieval_score'].",
    )
    device: str | None = Field(
        default=None, description="Torch device of the model; None: the CPU."
    )
    cache_dir: str | None = Field(
        default=None, description="Page-vector cache directory; None uses latecore's default."
    )

    _encoder: PageEncoder = PrivateAttr()

    def __init__(
        self,
        model: str | None = None,
        top_n: int = 5,
        keep_retrieval_score: bool = False,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        encoder: BaseEncoder | None = None,
        **kwargs: Any,
    ) -> None:
        top_n = check_positive(top_n, "top_n")  # before any model is loaded
        chosen = load_page_encoder(
            None if encoder is not None else model,
            encoder=encoder,
            device=device,
            cache_dir=cache_dir,
            require_cache=True,
        )
        assert isinstance(chosen, PageEncoder)  # page_encoder refuses any other
        # mypy derives BaseModel.__init__ from the parent's fields only (dataclass_transform).
        super().__init__(  # type: ignore[call-arg]
            model=model if model is not None else chosen.model_name,
            top_n=top_n,
            keep_retrieval_score=keep_retrieval_score,
            device=device,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            **kwargs,
        )
        self._encoder = chosen

    @classmethod
    def class_name(cls) -> str:
        return "LateInteractionImageRerank"

    @property
    def encoder(self) -> PageEncoder:
        """The page encoder doing the work (it holds the page-vector cache)."""
        return self._encoder

    def _ranked(self, query: str, nodes: list[NodeWithScore]) -> list[tuple[int, float]]:
        pages = [page_from_node(n.node) for n in nodes]  # a node without an image fails here
        vectors = self._encoder.encode_pages(pages)
        scores = maxsim_batch(self._encoder.encode_queries([query]), vectors)[0]
        return [(i, float(scores[i])) for i in top_k(scores, self.top_n)]
