"""LangChain retrievers over latecore searchers: one implementation, two discoverable classes.

:class:`LateSearchRetriever` does everything over latecore's ``Searcher`` seam;
:class:`LateInteractionRetriever` (a ``LateIndex``: MaxSim) and
:class:`LateInteractionHybridRetriever` (a ``HybridSearcher``: BM25 -> MaxSim)
only name the searcher they hold and its search options.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, field_validator
from typing_extensions import Self

from latecore import HybridSearcher, LateIndex, load_encoder
from latecore.base_encoder import BaseEncoder
from latecore.filters import compile_filter
from latecore.hybrid import CandidatesFrom, Fusion
from latecore.searcher import Searcher
from latecore.validation import check_count, check_positive

from ._convert import document_from_hit, documents_to_columns

__all__ = ["LateInteractionHybridRetriever", "LateInteractionRetriever", "LateSearchRetriever"]


class LateSearchRetriever(BaseRetriever):
    """A LangChain retriever over a latecore searcher; the base of both latecore retrievers.

    Use :class:`LateInteractionRetriever` (exact MaxSim over a ``LateIndex``) or
    :class:`LateInteractionHybridRetriever` (BM25 candidates, MaxSim, fusion);
    this class holds what they share, so it is documented once here.

    Each returned :class:`Document` keeps its id and metadata (a deep copy: changing
    it never changes the index) and gets ``metadata["relevance_score"]``, the
    score the results are sorted by, plus the searcher's per-stage scores, if any.
    ``invoke(query, k=...)`` overrides ``k`` for one call; other keywords of
    ``invoke`` are search options of the searcher (for example ``fusion=``), and
    an option the searcher does not know raises ``TypeError``. ``filter`` (a
    field, and per call: ``invoke(query, filter={"source": "notes.md"})``, the
    call's replacing the field's; ``filter={}`` searches without one) restricts
    the search to documents whose metadata it holds for, inside the searcher (the
    operators of ``latecore.filters``: LangChain's ``$eq``, ``$in``, ``$and`` ...).
    Counts follow
    latecore's rule: ``k`` is a non-negative ``int`` (``0`` returns ``[]``);
    ``True``, ``1.5`` or ``"3"`` raise ``ValueError``. ``ainvoke`` searches in a
    worker thread, so the event loop is never blocked.

    Setup:
        Install ``langchain-latecore``. Models load through pylate from the Hugging
        Face Hub or a local directory.

        ```bash
        pip install -U langchain-latecore
        ```

    Key init args:
        k: int
            Number of documents to return (default 4); `invoke(query, k=...)`
            overrides it per call.
        filter: dict | None
            Metadata filter of every search (default none); `invoke(query,
            filter=...)` replaces it per call.

    Instantiate:
        `from_texts` and `from_documents` encode documents into a new searcher
        (with `encoder=` or `model=`, `device=`, `cache_dir=`); each subclass
        also takes its searcher directly.

    Usage:
        `add_documents` / `aadd_documents` encode and add documents (an id already
        indexed is replaced); `delete` / `adelete` remove them by id.

    Use within a chain:
        ```python
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_core.runnables import RunnablePassthrough
        from langchain_openai import ChatOpenAI

        prompt = ChatPromptTemplate.from_template(
            \"\"\"Answer the question based only on the context provided.

        Context: {context}

        Question: {question}\"\"\"
        )

        llm = ChatOpenAI(model="gpt-4o-mini")


        def format_docs(docs):
            return "\\n\\n".join(doc.page_content for doc in docs)


        chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt
            | llm
            | StrOutputParser()
        )

        chain.invoke("What is the capital of Germany?")
        ```
    """

    k: int = Field(default=4, description="Number of documents to return.")
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Metadata filter (latecore.filters: LangChain's operators) of every "
        "search; invoke(query, filter=...) replaces it for one call.",
    )

    _searcher_field: ClassVar[str]
    """Name of the field holding the latecore searcher."""
    _searcher_class: ClassVar[Callable[..., Searcher[Any]]]
    """What :meth:`from_texts` builds: ``searcher_class(encoder, **searcher_kwargs)``."""
    _search_options: ClassVar[tuple[str, ...]] = ()
    """Fields that are default search options, overridable per call by ``invoke``."""

    @field_validator("k", mode="before")
    @classmethod
    def _check_k(cls, value: object) -> int:
        return check_count(value, "k")

    @field_validator("filter", mode="before")
    @classmethod
    def _check_filter(cls, value: Any) -> Any:
        compile_filter(value)  # a bad filter is refused now, not at the first search
        return value

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        encoder: BaseEncoder | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        searcher_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Encode ``texts`` into a new searcher and return a retriever over it.

        Parameters
        ----------
        texts
            The document texts.
        encoder
            A latecore encoder (for example ``latecore.Encoder(...)``, or a
            ``latecore.testing.FakeEncoder`` in tests). Exclusive with ``model``.
        metadatas
            One metadata mapping (or ``None``) per text.
        ids
            One id per text; uuid4 hex ids are generated when omitted.
        model
            ColBERT model id or local checkpoint, loaded when no ``encoder`` is
            given; ``None`` lets latecore pick its default model.
        device
            Device for a loaded ``model``; ``None`` picks CUDA when available.
        cache_dir
            Multivector cache directory of a loaded ``model``; ``None`` uses
            latecore's default, so re-indexing the same texts does not re-encode them.
        searcher_kwargs
            Other options of the searcher's constructor (``latecore.LateIndex``:
            ``dtype``, ``backend``, ...; ``latecore.HybridSearcher``: ``rrf_k``,
            ``alpha``, ``stopwords``, ``stemmer``).
        **kwargs
            Fields of the retriever, such as ``k``.

        Returns
        -------
        Self
            A retriever over the new searcher.
        """
        encoder = load_encoder(model, encoder=encoder, device=device, cache_dir=cache_dir)
        searcher = cls._searcher_class(encoder, **(searcher_kwargs or {}))
        searcher.add(list(texts), ids=ids, metadatas=metadatas)
        fields: dict[str, Any] = {cls._searcher_field: searcher}
        return cls(**fields, **kwargs)

    @classmethod
    def from_documents(
        cls,
        documents: Iterable[Document],
        encoder: BaseEncoder | None = None,
        *,
        ids: Sequence[str] | None = None,
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        searcher_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Encode ``documents`` into a new searcher; ids come from ``ids``, else ``Document.id``.

        See :meth:`from_texts` for the other parameters.
        """
        texts, doc_ids, metadatas = documents_to_columns(documents, ids)
        return cls.from_texts(
            texts,
            encoder,
            metadatas,
            doc_ids,
            model=model,
            device=device,
            cache_dir=cache_dir,
            searcher_kwargs=searcher_kwargs,
            **kwargs,
        )

    @property
    def _searcher(self) -> Searcher[Any]:
        searcher: Searcher[Any] = getattr(self, self._searcher_field)
        return searcher

    @property
    def encoder(self) -> BaseEncoder:
        """The encoder of the documents and the queries."""
        return self._searcher.encoder

    def add_documents(
        self, documents: Iterable[Document], *, ids: Sequence[str] | None = None
    ) -> list[str]:
        """Encode and add documents; a document whose id is already indexed replaces it.

        Returns
        -------
        list of str
            The ids: from ``ids``, else ``Document.id``, else newly generated.
        """
        texts, doc_ids, metadatas = documents_to_columns(documents, ids)
        return self._searcher.add(texts, ids=doc_ids, metadatas=metadatas)

    async def aadd_documents(
        self, documents: Iterable[Document], *, ids: Sequence[str] | None = None
    ) -> list[str]:
        """:meth:`add_documents` in a worker thread."""
        texts, doc_ids, metadatas = documents_to_columns(documents, ids)
        return await self._searcher.aadd(texts, ids=doc_ids, metadatas=metadatas)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""
        return self._searcher.delete(ids)

    async def adelete(self, ids: Sequence[str]) -> int:
        """:meth:`delete` in a worker thread."""
        return await self._searcher.adelete(ids)

    def _search_args(self, k: int | None, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """``k`` and the search options of one call: what ``invoke`` gave, else the fields.

        A field left at ``None`` is passed on as ``None``, which the searcher reads
        as "my own setting" at the time of the call (nothing is copied from it).
        Values are passed on unchanged, so the searcher's own rules refuse a bad
        one (``k=True``, an unknown option) exactly as a direct search would.
        """
        for name in self._search_options:
            if options.get(name) is None:
                options[name] = getattr(self, name)
        if options.get("filter") is None and self.filter is not None:
            options["filter"] = self.filter
        return (self.k if k is None else k), options

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        **options: Any,
    ) -> list[Document]:
        k, options = self._search_args(k, options)
        return [document_from_hit(hit) for hit in self._searcher.search(query, k, **options)]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        **options: Any,
    ) -> list[Document]:
        k, options = self._search_args(k, options)
        hits = await self._searcher.asearch(query, k, **options)
        return [document_from_hit(hit) for hit in hits]


class LateInteractionRetriever(LateSearchRetriever):
    """Late-interaction (ColBERT) retriever: exact MaxSim search over a latecore index.

    Documents are encoded once, when added, into one vector per token; a query is
    scored against every stored document by MaxSim (for each query token, its best
    match in the document, summed): ``metadata["relevance_score"]`` is the MaxSim
    score. Behaviour shared with the hybrid retriever (documents, ``k``, updates,
    async) is described in :class:`LateSearchRetriever`.

    Setup:
        ```bash
        pip install -U langchain-latecore
        ```

    Key init args:
        index: latecore.LateIndex
            The documents and their multivectors (build one with `from_texts` or
            `from_documents`, or load a saved one with `latecore.LateIndex.load`).
        k: int
            Number of documents to return (default 4).

    Instantiate:
        ```python
        from langchain_core.documents import Document
        from langchain_latecore import LateInteractionRetriever

        retriever = LateInteractionRetriever.from_documents(
            [
                Document("Paris is the capital of France.", id="paris"),
                Document("Berlin is the capital of Germany.", id="berlin"),
                Document("Cats sleep most of the day.", id="cats"),
            ],
            model="answerdotai/answerai-colbert-small-v1",
            k=2,
        )
        ```

        From an existing index (for example one saved with `LateIndex.save`):

        ```python
        from latecore import Encoder, LateIndex

        index = LateIndex.load("my-index", Encoder("answerdotai/answerai-colbert-small-v1"))
        retriever = LateInteractionRetriever(index=index, k=5)
        ```

    Usage:
        ```python
        retriever.invoke("What is the capital of Germany?", k=1)
        ```

        ```txt
        [Document(id='berlin', metadata={'relevance_score': 21.7},
                  page_content='Berlin is the capital of Germany.')]
        ```

    Use within a chain:
        ```python
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.runnables import RunnablePassthrough

        chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt  # prompt, llm and format_docs as in LateSearchRetriever's example
            | llm
            | StrOutputParser()
        )
        chain.invoke("What is the capital of Germany?")
        ```
    """

    index: LateIndex = Field(description="The latecore index searched by MaxSim.")

    _searcher_field: ClassVar[str] = "index"
    _searcher_class: ClassVar[Callable[..., Searcher[Any]]] = LateIndex


class LateInteractionHybridRetriever(LateSearchRetriever):
    """Hybrid retriever: BM25 and ColBERT nominate candidates, exact MaxSim scores them, fused.

    BM25 (English stopwords and stemming by default) picks its ``candidates`` best
    lexical matches and, with ``candidates_from="both"``, the index its own best
    ``candidates`` by MaxSim; every candidate's stored multivectors are scored
    by exact MaxSim (nothing is re-encoded at query time) and the rankings are
    fused: ``"adaptive"`` (default: z-scores, BM25 weighted per query by how much
    of the query its best match covers), ``"rerank"`` (MaxSim order), ``"rrf"``
    (reciprocal rank fusion) or ``"linear"`` (fixed weights). See
    ``latecore.HybridSearcher`` for the defaults (``candidates_from="auto"``).
    BM25 is rebuilt over the whole corpus on the first query after an update, so
    add in batches.

    ``metadata["relevance_score"]`` is the fused score; each document also gets
    ``bm25_score``, ``bm25_rank``, ``colbert_score`` and ``colbert_rank``
    (1-based ranks among each stage's nominations; ``None`` where a stage did not
    nominate the document). Behaviour shared with the MaxSim retriever
    (documents, ``k``, updates, async) is described in :class:`LateSearchRetriever`.

    Setup:
        ```bash
        pip install -U langchain-latecore
        ```

    Key init args:
        searcher: latecore.HybridSearcher
            The BM25 + MaxSim searcher (build one with `from_texts`,
            `from_documents` or `from_index`).
        k: int
            Number of documents to return (default 4).
        fusion: "adaptive" | "rerank" | "rrf" | "linear" | None
            How the two rankings are combined (default `None`: the searcher's).
        candidates: int | None
            Candidates each stage nominates per query, at least 1 (default
            `None`: the searcher's, 100 unless set).
        candidates_from: "auto" | "both" | "bm25" | None
            Which stages nominate (default `None`: the searcher's).

        A field left at `None` follows the searcher: its setting is read on every
        call, so a later `retriever.searcher.fusion = "rrf"` takes effect at once; a
        field given a value overrides the searcher's. `k`, `fusion`, `candidates`
        and `candidates_from` passed to `invoke` override both for that call.

    Instantiate:
        ```python
        from langchain_latecore import LateInteractionHybridRetriever

        retriever = LateInteractionHybridRetriever.from_texts(
            [
                "Paris is the capital of France.",
                "Berlin is the capital of Germany.",
                "Error E1234: the disk quota was exceeded.",
            ],
            model="answerdotai/answerai-colbert-small-v1",
            k=2,
            fusion="rrf",
            candidates=50,
        )
        ```

    Usage:
        ```python
        retriever.invoke("what does error E1234 mean", k=1)
        ```

        ```txt
        [Document(id='...', metadata={'relevance_score': 0.0328, 'bm25_score': 1.9,
                  'bm25_rank': 1, 'colbert_score': 9.8, 'colbert_rank': 1},
                  page_content='Error E1234: the disk quota was exceeded.')]
        ```

    Use within a chain:
        ```python
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.runnables import RunnablePassthrough

        def cite(docs):  # each passage with its id, and why it was retrieved
            return "\n\n".join(
                f"[{d.id}] (bm25 #{d.metadata['bm25_rank']}, "
                f"colbert #{d.metadata['colbert_rank']}) {d.page_content}"
                for d in docs
            )


        answer = (
            {"context": retriever | cite, "question": RunnablePassthrough()}
            | prompt  # prompt and llm as in LateSearchRetriever's example
            | llm
            | StrOutputParser()
        )
        answer.invoke("what does error E1234 mean")
        ```
    """

    searcher: HybridSearcher = Field(description="The latecore BM25 -> MaxSim searcher.")
    fusion: Fusion | None = Field(
        default=None,
        description="Fusion of the BM25 and MaxSim rankings: 'adaptive', 'rerank', 'rrf' or "
        "'linear'. "
        "None (default): the searcher's, read on every call.",
    )
    candidates: int | None = Field(
        default=None,
        description="Candidates each stage nominates per query. "
        "None (default): the searcher's, read on every call.",
    )
    candidates_from: CandidatesFrom | None = Field(
        default=None,
        description="Which stages nominate candidates: 'auto', 'both' or 'bm25'. "
        "None (default): the searcher's, read on every call.",
    )

    _searcher_field: ClassVar[str] = "searcher"
    _searcher_class: ClassVar[Callable[..., Searcher[Any]]] = HybridSearcher
    _search_options: ClassVar[tuple[str, ...]] = ("fusion", "candidates", "candidates_from")

    @field_validator("candidates", mode="before")
    @classmethod
    def _check_candidates(cls, value: object) -> int | None:
        return None if value is None else check_positive(value, "candidates")

    @classmethod
    def from_index(
        cls,
        index: LateIndex,
        *,
        searcher_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A retriever over an existing :class:`~latecore.LateIndex` (shared, not copied).

        BM25 is built over the index's stored texts; ``searcher_kwargs`` and
        ``kwargs`` are as in :meth:`~LateSearchRetriever.from_texts`.
        """
        searcher = HybridSearcher.from_index(index, **(searcher_kwargs or {}))
        return cls(searcher=searcher, **kwargs)

    @property
    def index(self) -> LateIndex:
        """The index holding the documents and their multivectors."""
        return self.searcher.index
