"""LateInteractionImageRerank: rerank LlamaIndex image nodes by MaxSim over cached page vectors."""

from __future__ import annotations

import os
from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from latecore.base_encoder import BaseEncoder
from latecore.maxsim import maxsim_batch, top_k
from latecore.validation import check_positive
from latecore.vision import PageEncoder

from ._pages import page_encoder, page_from_node
from ._shared import with_hidden_metadata

__all__ = ["LateInteractionImageRerank"]

dispatcher = instrument.get_dispatcher(__name__)


class LateInteractionImageRerank(BaseNodePostprocessor):
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
        chosen = page_encoder(
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

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model
            )
        )
        if query_bundle is None:
            raise ValueError(
                "LateInteractionImageRerank needs the query: pass query_bundle or query_str "
                "to postprocess_nodes"
            )
        if not nodes:
            return []
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self.model,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            pages = [page_from_node(n.node) for n in nodes]  # a node without an image fails here
            vectors = self._encoder.encode_pages(pages)
            query = self._encoder.encode_queries([query_bundle.query_str])[0]
            scores = maxsim_batch([query], vectors)[0]
            reranked = [
                self._rescore(nodes[i], float(scores[i])) for i in top_k(scores, self.top_n)
            ]
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    def _rescore(self, scored: NodeWithScore, score: float) -> NodeWithScore:
        node = scored.node
        if self.keep_retrieval_score:
            node = with_hidden_metadata(node, {"retrieval_score": scored.score})
        return NodeWithScore(node=node, score=score)
