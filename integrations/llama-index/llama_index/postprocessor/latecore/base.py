"""LateInteractionRerank: a LlamaIndex node postprocessor backed by latecore's cached Reranker."""

from __future__ import annotations

import os
from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from latecore import Reranker, load_encoder
from latecore.base_encoder import BaseEncoder
from latecore.validation import check_positive

from ._shared import with_hidden_metadata

__all__ = ["LateInteractionRerank"]

dispatcher = instrument.get_dispatcher(__name__)


class MaxSimRerankFrame(BaseNodePostprocessor):
    """What every latecore node reranker shares: the events, the checks and the
    rescored nodes; a subclass says how nodes are scored (:meth:`_ranked`) and
    declares the ``model``, ``top_n`` and ``keep_retrieval_score`` fields."""

    model: str
    top_n: int
    keep_retrieval_score: bool

    def _ranked(self, query: str, nodes: list[NodeWithScore]) -> list[tuple[int, float]]:
        """The best ``top_n`` nodes as ``(position in nodes, score)``, best first."""
        raise NotImplementedError

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
                f"{self.class_name()} needs the query: pass query_bundle or query_str "
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
            ranked = self._ranked(query_bundle.query_str, nodes)
            reranked = [self._rescore(nodes[i], score) for i, score in ranked]
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    def _rescore(self, scored: NodeWithScore, score: float) -> NodeWithScore:
        node = scored.node
        if self.keep_retrieval_score:
            node = with_hidden_metadata(node, {"retrieval_score": scored.score})
        return NodeWithScore(node=node, score=score)


class LateInteractionRerank(MaxSimRerankFrame):
    """Rerank retrieved nodes by ColBERT late interaction (exact MaxSim), with cached documents.

    Node multivectors go through latecore's :class:`~latecore.MultivectorCache`:
    a node seen before, for any query and in any process sharing the cache
    directory, is not encoded again, so a warm rerank costs little more than
    encoding the query.

    Node text is read with ``get_content(metadata_mode=MetadataMode.EMBED)``, the
    view LlamaIndex embeds. The returned :class:`NodeWithScore` objects are new;
    they share the input nodes unless ``keep_retrieval_score`` is set, in which
    case each carries a copy of its node with ``metadata["retrieval_score"]``
    (hidden from the embedding and LLM views, so prompts and cache keys do not
    change). Input nodes are never modified.

    Parameters
    ----------
    model
        ColBERT model: a Hugging Face Hub id or a local checkpoint directory.
        ``None`` lets latecore choose (``$LATECORE_MODEL``, else
        ``answerdotai/answerai-colbert-small-v1``). Ignored for loading when
        ``encoder`` or ``reranker`` is given; it then only names the model in
        events.
    top_n
        Number of nodes returned: a positive ``int`` (LlamaIndex's convention:
        ``0``, ``True``, ``1.5`` and ``"3"`` raise ``ValueError``).
    keep_retrieval_score
        Keep each node's incoming score in ``metadata["retrieval_score"]``.
    device
        ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when available.
    cache_dir
        Directory of the multivector cache; ``None`` uses latecore's default
        (``$LATECORE_CACHE_DIR`` or the user cache directory).
    encoder
        An already-built latecore encoder to use instead of loading ``model``
        (for example one shared with a ``LateInteractionRetriever``).
    reranker
        An already-built :class:`latecore.Reranker` (exclusive with ``encoder``).
    **kwargs
        Other :class:`BaseNodePostprocessor` fields (``callback_manager``).

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> from llama_index.core.schema import TextNode
    >>> rerank = LateInteractionRerank(top_n=1, encoder=FakeEncoder())
    >>> nodes = [
    ...     NodeWithScore(node=TextNode(text="cats purr"), score=0.9),
    ...     NodeWithScore(node=TextNode(text="the stock market fell"), score=0.1),
    ... ]
    >>> [n.get_content() for n in rerank.postprocess_nodes(nodes, query_str="market crash")]
    ['the stock market fell']

    In a query engine::

        index.as_query_engine(
            similarity_top_k=20,
            node_postprocessors=[LateInteractionRerank(top_n=5)],
        )
    """

    model: str = Field(description="ColBERT model id or local checkpoint directory.")
    top_n: int = Field(default=5, description="Number of nodes to return (at least 1).")
    keep_retrieval_score: bool = Field(
        default=False,
        description="Keep the incoming score in the node's metadata['retrieval_score'].",
    )
    device: str | None = Field(
        default=None, description="Torch device for the model; None picks CUDA when available."
    )
    cache_dir: str | None = Field(
        default=None, description="Multivector cache directory; None uses latecore's default."
    )

    _reranker: Reranker = PrivateAttr()

    def __init__(
        self,
        model: str | None = None,
        top_n: int = 5,
        keep_retrieval_score: bool = False,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        encoder: BaseEncoder | None = None,
        reranker: Reranker | None = None,
        **kwargs: Any,
    ) -> None:
        top_n = check_positive(top_n, "top_n")  # before any model is loaded
        if encoder is not None and reranker is not None:
            raise ValueError("pass either encoder or reranker, not both")
        if reranker is None:
            # A reranker sees the same candidates again and again: it always has a cache.
            encoder = load_encoder(
                model, encoder=encoder, device=device, cache_dir=cache_dir, require_cache=True
            )
            reranker = Reranker(encoder)
        # mypy derives BaseModel.__init__ from the parent's fields only (dataclass_transform).
        super().__init__(  # type: ignore[call-arg]
            model=model if model is not None else reranker.encoder.model_name,
            top_n=top_n,
            keep_retrieval_score=keep_retrieval_score,
            device=device,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            **kwargs,
        )
        self._reranker = reranker

    @classmethod
    def class_name(cls) -> str:
        return "LateInteractionRerank"

    @property
    def reranker(self) -> Reranker:
        """The latecore reranker doing the work (its ``encoder`` holds the cache)."""
        return self._reranker

    def _ranked(self, query: str, nodes: list[NodeWithScore]) -> list[tuple[int, float]]:
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        return [(r.index, r.score) for r in self._reranker.rerank(query, texts, top_k=self.top_n)]
