"""LateInteractionVectorStore: a LangChain ``VectorStore`` over a latecore searcher.

The store holds a ``latecore.LateIndex`` (MaxSim through its backend: exact, warp,
qdrant, lancedb, plaid) or a ``latecore.HybridSearcher`` (BM25 -> MaxSim ->
fusion). It is what LangChain's indexing API (``langchain_core.indexing.index``
with a record manager) and ``as_retriever`` need: add with ids, delete, get by id,
search with a metadata ``filter`` that the searcher applies inside the search.
"""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from typing_extensions import Self

from latecore import HybridHit, HybridSearcher, LateIndex, SearchHit, load_encoder
from latecore.base_encoder import BaseEncoder

from ._convert import documents_to_columns, filled_ids, stored_document

__all__ = ["LateInteractionVectorStore", "relevance"]

Searchers = LateIndex | HybridSearcher

_ADD_OPTIONS = ("batch_size",)
"""Keywords ``add_texts``/``add_documents`` accept and do not need (LangChain's indexing
API passes ``batch_size``; the encoder batches by its own ``batch_size``)."""

_NO_VECTORS = (
    "{method} is not available on a late-interaction store: a document is one vector per "
    "token, scored against a query's token vectors by MaxSim, so there is no single "
    "embedding vector to search with; use similarity_search with the query text"
)


def relevance(hit: SearchHit, n_query_vectors: int) -> float:
    """A hit's relevance in ``[0, 1]``: the mean over query tokens of their best cosine.

    MaxSim sums, over the query's token vectors, the best cosine similarity with
    any of the document's token vectors, so dividing by the number of query
    vectors gives the late-interaction analogue of a cosine similarity: ``1``
    when every query token has an identical document token. It is clipped to
    ``[0, 1]`` (LangChain's range; a negative mean is no relevance). For a hybrid
    hit it is computed from ``colbert_score`` (the exact MaxSim score), not from
    the fused score the hits are ordered by.

    Examples
    --------
    >>> relevance(SearchHit(id="d", score=24.0, text=""), 32)
    0.75
    >>> relevance(SearchHit(id="d", score=-3.0, text=""), 32)
    0.0
    """
    score = hit.colbert_score if isinstance(hit, HybridHit) else hit.score
    return min(1.0, max(0.0, score / n_query_vectors))


class LateInteractionVectorStore(VectorStore):
    """LangChain vector store over a latecore ``LateIndex`` or ``HybridSearcher``.

    Late interaction keeps one vector per token of each document and scores a
    query by MaxSim; the store is searched with query text, never with an
    embedding vector. ``similarity_search_with_score`` returns each hit's score
    (MaxSim, or the fused score of a hybrid searcher; higher is better);
    ``similarity_search_with_relevance_scores`` maps MaxSim to ``[0, 1]`` (see
    :func:`relevance`), so ``as_retriever(search_type="similarity_score_threshold",
    search_kwargs={"score_threshold": 0.6})`` keeps documents whose query tokens
    match with a mean cosine of at least 0.6.

    ``filter=`` (in every search method, and ``as_retriever(search_kwargs={"filter":
    ...})``) takes LangChain's metadata filter operators (``{"field": value}``,
    ``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $not``, dotted keys for
    nested metadata; ``latecore.filters``), applied by the searcher inside the
    search: the ``k`` results are the best documents that match. Other search
    keywords go to the searcher (a hybrid searcher's ``fusion``, ``candidates``,
    ``candidates_from``); an unknown one raises ``TypeError``.

    Adding a document whose id is stored replaces it; ids come from ``ids``, else
    ``Document.id``, else a new uuid4 hex. Returned documents are new objects (their
    metadata a deep copy); added documents are copied, never changed. Async methods
    run the searcher's work in a worker thread.

    Methods that take an embedding vector (``similarity_search_by_vector``,
    ``max_marginal_relevance_search_by_vector``) and maximal marginal relevance
    raise ``NotImplementedError`` saying why; ``embeddings`` is ``None`` (the
    encoder is :attr:`encoder`).

    Setup:
        ```bash
        pip install -U langchain-latecore
        ```

    Instantiate:
        ```python
        from langchain_latecore import LateInteractionVectorStore

        store = LateInteractionVectorStore.from_texts(
            ["Paris is the capital of France.", "Berlin is the capital of Germany."],
            model="answerdotai/answerai-colbert-small-v1",
            metadatas=[{"country": "FR"}, {"country": "DE"}],
            ids=["paris", "berlin"],
        )
        ```

        Over an existing index or searcher (for example one saved with
        `LateIndex.save`): `LateInteractionVectorStore(LateIndex.load(path, encoder))`;
        `backend="warp"` (or `"qdrant"`, `"lancedb"`, `"plaid"`) in `from_texts`
        picks the index's engine, `hybrid=True` a BM25 -> MaxSim searcher.

    Usage:
        ```python
        store.similarity_search("capital of Germany", k=1, filter={"country": "DE"})
        store.similarity_search_with_score("capital of France", k=1)
        store.delete(["paris"])
        retriever = store.as_retriever(search_kwargs={"k": 3, "filter": {"country": "DE"}})
        ```

    Indexing API:
        ```python
        from langchain_core.indexing import InMemoryRecordManager, index

        manager = InMemoryRecordManager("latecore/docs")
        manager.create_schema()
        index(docs, manager, store, cleanup="incremental", source_id_key="source")
        ```

        A second run over unchanged documents adds nothing and encodes nothing.

    Parameters
    ----------
    searcher
        The latecore ``LateIndex`` or ``HybridSearcher`` holding the documents.
    """

    def __init__(self, searcher: LateIndex | HybridSearcher) -> None:
        if not isinstance(searcher, (LateIndex, HybridSearcher)):
            raise TypeError(
                "LateInteractionVectorStore takes a latecore LateIndex or HybridSearcher, "
                f"got {type(searcher).__name__}"
            )
        self._searcher: Searchers = searcher

    @property
    def searcher(self) -> LateIndex | HybridSearcher:
        """The latecore searcher holding the documents and their multivectors."""
        return self._searcher

    @property
    def encoder(self) -> BaseEncoder:
        """The encoder of the documents and the queries."""
        return self._searcher.encoder

    @property
    def embeddings(self) -> Embeddings | None:
        """``None``: a late-interaction encoder gives one vector per token, not an Embeddings."""
        return None

    def __len__(self) -> int:
        return len(self._searcher)

    # Adding, deleting, getting

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Encode and add texts (an id already stored is replaced); returns their ids.

        ``batch_size`` (LangChain's indexing API passes it) is accepted: the encoder
        batches by its own ``batch_size``.
        """
        return self._searcher.add(*_text_columns(texts, metadatas, ids, kwargs))

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Encode and add documents; ids from ``ids=``, else ``Document.id``, else new."""
        return self._searcher.add(*_document_columns(documents, kwargs))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """:meth:`add_texts` with the encoding in a worker thread."""
        return await self._searcher.aadd(*_text_columns(texts, metadatas, ids, kwargs))

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """:meth:`add_documents` with the encoding in a worker thread."""
        return await self._searcher.aadd(*_document_columns(documents, kwargs))

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Remove documents by id (unknown ids are ignored); returns ``True``.

        ``ids=None`` is refused rather than read as "delete everything": pass
        ``store.searcher.ids`` to empty the store.
        """
        self._searcher.delete(_delete_ids(ids, kwargs))
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """:meth:`delete` in a worker thread."""
        await self._searcher.adelete(_delete_ids(ids, kwargs))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in the order given; unknown ids are skipped."""
        return [stored_document(hit) for hit in self._searcher.get(ids)]

    # Searching

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents that best match ``query`` (and ``filter=``, if given)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search` with each document's score (MaxSim, or the fused score
        of a hybrid searcher; higher is better)."""
        return [(stored_document(h), h.score) for h in self._searcher.search(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """:meth:`similarity_search` in a worker thread."""
        scored = await self.asimilarity_search_with_score(query, k, **kwargs)
        return [doc for doc, _ in scored]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score` in a worker thread."""
        hits = await self._searcher.asearch(query, k, **kwargs)
        return [(stored_document(h), h.score) for h in hits]

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The hits with :func:`relevance` scores; LangChain's public method applies
        ``score_threshold``."""
        if not isinstance(query, str):
            raise TypeError(f"search takes one query string, got {type(query).__name__}")
        vectors = self.encoder.encode_queries([query])
        searcher = self._searcher
        hits: Sequence[SearchHit]
        if isinstance(searcher, LateIndex):  # one query encode: the index takes its vectors
            hits = searcher.search_vectors(vectors, k, **kwargs)[0]
        else:
            hits = searcher.search(query, k, **kwargs)
        n_vectors = len(vectors[0])
        return [(stored_document(h), relevance(h, n_vectors)) for h in hits]

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await asyncio.to_thread(
            self._similarity_search_with_relevance_scores, query, k, **kwargs
        )

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """Not available: late interaction has no single query vector (raises)."""
        raise NotImplementedError(_NO_VECTORS.format(method="similarity_search_by_vector"))

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Not available (raises): MMR needs one similarity between two documents."""
        raise NotImplementedError(
            "max_marginal_relevance_search is not available on a late-interaction store: "
            "MMR compares documents with each other by the cosine of their embeddings, and "
            "a late-interaction document has one vector per token and MaxSim is a "
            "query-to-document score (asymmetric, not bounded), so there is no document "
            "similarity to trade off against relevance; use similarity_search"
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Not available: late interaction has no single query vector (raises)."""
        raise NotImplementedError(
            _NO_VECTORS.format(method="max_marginal_relevance_search_by_vector")
        )

    # Construction

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: BaseEncoder | Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        backend: str = "exact",
        hybrid: bool = False,
        index_kwargs: Mapping[str, Any] | None = None,
        hybrid_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A new store over ``texts``, encoded by ``embedding`` or a loaded ``model``.

        Parameters
        ----------
        texts
            The document texts.
        embedding
            A latecore encoder (``latecore.Encoder``, or ``latecore.testing.FakeEncoder``
            in tests); exclusive with ``model``. LangChain ``Embeddings`` (one vector
            per text) are refused: late interaction needs one vector per token.
        metadatas, ids
            One metadata mapping and one id per text (ids default to new uuid4 hex).
        model, device, cache_dir
            ColBERT model id or local checkpoint loaded through ``latecore.load_encoder``
            when no encoder is given (``None``: latecore's default model), its torch
            device and its multivector cache directory (re-adding the same texts later
            encodes nothing).
        backend
            The ``LateIndex`` backend: ``"exact"`` (default), ``"warp"``, ``"qdrant"``,
            ``"lancedb"`` or ``"plaid"``.
        hybrid
            Search with a ``HybridSearcher`` (BM25 and MaxSim candidates, fusion).
        index_kwargs
            Other ``LateIndex`` options: ``dtype``, ``vectors``, the backend's options.
        hybrid_kwargs
            ``HybridSearcher`` options (``candidates``, ``candidates_from``, ``fusion``,
            ``rrf_k``, ``alpha``, ``language``, ...); only with ``hybrid=True``.

        Raises
        ------
        TypeError
            If ``embedding`` is not a latecore encoder, or for an unknown keyword.
        """
        if kwargs:
            raise TypeError(f"from_texts got unknown keywords {sorted(kwargs)}")
        if embedding is not None and not isinstance(embedding, BaseEncoder):
            raise TypeError(
                "a late-interaction store needs a latecore encoder (one vector per token), "
                f"not {type(embedding).__name__}: pass latecore.Encoder(...) or model='...'"
            )
        if hybrid_kwargs and not hybrid:
            raise ValueError("hybrid_kwargs need hybrid=True")
        encoder = load_encoder(model, encoder=embedding, device=device, cache_dir=cache_dir)
        index = LateIndex(encoder, backend=backend, **(index_kwargs or {}))
        searcher: Searchers = (
            HybridSearcher.from_index(index, **(hybrid_kwargs or {})) if hybrid else index
        )
        store = cls(searcher)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    def from_documents(
        cls,
        documents: list[Document],
        embedding: BaseEncoder | Embeddings | None = None,
        **kwargs: Any,
    ) -> Self:
        """A new store over ``documents`` (ids from ``ids=``, else ``Document.id``); the
        other keywords are those of :meth:`from_texts`."""
        texts, ids, metadatas = documents_to_columns(documents, kwargs.pop("ids", None))
        return cls.from_texts(texts, embedding, metadatas, ids=ids, **kwargs)


def _check_add_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(_ADD_OPTIONS))
    if unknown:
        raise TypeError(f"add_texts and add_documents got unknown keywords {unknown}")


def _text_columns(
    texts: Iterable[str],
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    ids: Sequence[str | None] | None,
    options: Mapping[str, Any],
) -> tuple[Sequence[str], list[str] | None, list[Mapping[str, Any] | None] | None]:
    """What ``add_texts`` passes to the searcher's ``add`` (texts, ids, metadatas): ids
    filled where ``None``, metadata copied."""
    _check_add_options(options)
    return (
        texts if isinstance(texts, str) else list(texts),  # the searcher refuses a string
        None if ids is None else filled_ids(ids),
        None if metadatas is None else [copy.deepcopy(m) for m in metadatas],
    )


def _document_columns(
    documents: Iterable[Document], options: dict[str, Any]
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """What ``add_documents`` passes to the searcher's ``add`` (``ids=`` wins over
    ``Document.id``)."""
    ids = options.pop("ids", None)
    _check_add_options(options)
    return documents_to_columns(documents, ids)


def _delete_ids(ids: list[str] | None, options: Mapping[str, Any]) -> list[str]:
    if options:
        raise TypeError(f"delete got unknown keywords {sorted(options)}")
    if ids is None:
        raise ValueError(
            "delete needs the ids to remove; to remove every document pass store.searcher.ids"
        )
    return ids
