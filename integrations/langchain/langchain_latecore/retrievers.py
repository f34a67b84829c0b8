"""LangChain retrievers over latecore's LateIndex (MaxSim) and HybridSearcher (BM25 -> MaxSim)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, model_validator
from typing_extensions import Self

from latecore import BaseEncoder, HybridSearcher, LateIndex, load_encoder
from latecore.hybrid import Fusion

from ._convert import document_from_hit, documents_to_columns

__all__ = ["LateInteractionHybridRetriever", "LateInteractionRetriever"]


class LateInteractionRetriever(BaseRetriever):
    """Late-interaction (ColBERT) retriever: exact MaxSim search over a latecore index.

    Documents are encoded once, when added, into one vector per token; a query is
    scored against every stored document by MaxSim (for each query token, its best
    match in the document, summed). Each returned :class:`Document` keeps its id
    and metadata and gets ``metadata["relevance_score"]``, the MaxSim score.

    Setup:
        Install ``langchain-latecore``. Models load through pylate from the Hugging
        Face Hub or a local directory.

        ```bash
        pip install -U langchain-latecore
        ```

    Key init args:
        index: latecore.LateIndex
            The documents and their multivectors (build one with `from_texts` or
            `from_documents`, or load a saved one with `latecore.LateIndex.load`).
        k: int
            Number of documents to return (default 4); `invoke(query, k=...)`
            overrides it per call.

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

    index: LateIndex = Field(description="The latecore index searched by MaxSim.")
    k: int = Field(default=4, ge=0, description="Number of documents to return.")

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
        **kwargs: Any,
    ) -> Self:
        """Encode ``texts`` into a new index and return a retriever over it.

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
        **kwargs
            Other fields of the retriever, such as ``k``.

        Returns
        -------
        LateInteractionRetriever
            A retriever over the new index.
        """
        index = LateIndex(load_encoder(model, encoder=encoder, device=device, cache_dir=cache_dir))
        index.add(list(texts), ids=ids, metadatas=metadatas)
        return cls(index=index, **kwargs)

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
        **kwargs: Any,
    ) -> Self:
        """Encode ``documents`` into a new index; ids come from ``ids``, else ``Document.id``.

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
            **kwargs,
        )

    @property
    def encoder(self) -> BaseEncoder:
        """The encoder of the index."""
        return self.index.encoder

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
        return self.index.add(texts, ids=doc_ids, metadatas=metadatas)

    async def aadd_documents(
        self, documents: Iterable[Document], *, ids: Sequence[str] | None = None
    ) -> list[str]:
        """:meth:`add_documents` in a worker thread."""
        return await asyncio.to_thread(self.add_documents, list(documents), ids=ids)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""
        return self.index.delete(ids)

    async def adelete(self, ids: Sequence[str]) -> int:
        """:meth:`delete` in a worker thread."""
        return await asyncio.to_thread(self.delete, ids)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        hits = self.index.search(query, k=self.k if k is None else k)
        return [document_from_hit(hit) for hit in hits]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        hits = await asyncio.to_thread(self.index.search, query, self.k if k is None else k)
        return [document_from_hit(hit) for hit in hits]


class LateInteractionHybridRetriever(BaseRetriever):
    """Hybrid retriever: BM25 candidates reranked by ColBERT late interaction, then fused.

    BM25 picks the ``candidates`` best lexical matches; their stored multivectors
    are scored by exact MaxSim (nothing is re-encoded at query time) and the two
    rankings are fused: ``"rerank"`` (MaxSim order, the default), ``"rrf"``
    (reciprocal rank fusion) or ``"linear"`` (weighted min-max normalised scores).
    A document sharing no word with the query is not a candidate.

    Each returned :class:`Document` keeps its id and metadata and gets
    ``relevance_score`` (the fused score), ``bm25_score``, ``bm25_rank``,
    ``colbert_score`` and ``colbert_rank`` (1-based ranks among the candidates).

    Setup:
        Install ``langchain-latecore``. Models load through pylate from the Hugging
        Face Hub or a local directory.

        ```bash
        pip install -U langchain-latecore
        ```

    Key init args:
        searcher: latecore.HybridSearcher
            The BM25 + MaxSim searcher (build one with `from_texts`,
            `from_documents` or `from_index`).
        k: int
            Number of documents to return (default 4).
        fusion: "rerank" | "rrf" | "linear"
            How the two rankings are combined (default: the searcher's).
        candidates: int
            BM25 candidates scored by MaxSim per query (default: the searcher's, 100).

        `k`, `fusion` and `candidates` can also be passed to `invoke`.

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

        chain.invoke("what does error E1234 mean")
        ```
    """

    searcher: HybridSearcher = Field(description="The latecore BM25 -> MaxSim searcher.")
    k: int = Field(default=4, ge=0, description="Number of documents to return.")
    fusion: Fusion = Field(
        default="rerank",
        description="Fusion of the BM25 and MaxSim rankings: 'rerank', 'rrf' or 'linear'. "
        "Defaults to the searcher's.",
    )
    candidates: int = Field(
        default=100,
        ge=1,
        description="BM25 candidates scored by MaxSim per query. Defaults to the searcher's.",
    )

    @model_validator(mode="before")
    @classmethod
    def _searcher_defaults(cls, data: Any) -> Any:
        searcher = data.get("searcher") if isinstance(data, dict) else None
        if isinstance(searcher, HybridSearcher):
            data = {"fusion": searcher.fusion, "candidates": searcher.candidates, **data}
        return data

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
        """Index ``texts`` for BM25 and MaxSim and return a retriever over them.

        Parameters
        ----------
        texts
            The document texts.
        encoder
            A latecore encoder for the ColBERT stage. Exclusive with ``model``.
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
            latecore's default.
        searcher_kwargs
            Other options of :class:`latecore.HybridSearcher`: ``rrf_k``,
            ``alpha``, ``stopwords``, ``stemmer``.
        **kwargs
            Fields of the retriever: ``k``, ``fusion``, ``candidates``, ...

        Returns
        -------
        LateInteractionHybridRetriever
            A retriever over the new searcher.
        """
        searcher = HybridSearcher.from_texts(
            list(texts),
            load_encoder(model, encoder=encoder, device=device, cache_dir=cache_dir),
            ids=ids,
            metadatas=metadatas,
            **(searcher_kwargs or {}),
        )
        return cls(searcher=searcher, **kwargs)

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
        """Index ``documents``; ids come from ``ids``, else ``Document.id``.

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
        ``kwargs`` are as in :meth:`from_texts`.
        """
        searcher = HybridSearcher.from_index(index, **(searcher_kwargs or {}))
        return cls(searcher=searcher, **kwargs)

    @property
    def index(self) -> LateIndex:
        """The index holding the documents and their multivectors."""
        return self.searcher.index

    def add_documents(
        self, documents: Iterable[Document], *, ids: Sequence[str] | None = None
    ) -> list[str]:
        """Encode and add documents to both stages; an already indexed id is replaced.

        BM25 is rebuilt over the whole corpus on the next query, so add in batches.

        Returns
        -------
        list of str
            The ids: from ``ids``, else ``Document.id``, else newly generated.
        """
        texts, doc_ids, metadatas = documents_to_columns(documents, ids)
        return self.searcher.add(texts, ids=doc_ids, metadatas=metadatas)

    async def aadd_documents(
        self, documents: Iterable[Document], *, ids: Sequence[str] | None = None
    ) -> list[str]:
        """:meth:`add_documents` in a worker thread."""
        return await asyncio.to_thread(self.add_documents, list(documents), ids=ids)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id from both stages; returns how many were removed."""
        return self.searcher.delete(ids)

    async def adelete(self, ids: Sequence[str]) -> int:
        """:meth:`delete` in a worker thread."""
        return await asyncio.to_thread(self.delete, ids)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        fusion: Fusion | None = None,
        candidates: int | None = None,
    ) -> list[Document]:
        hits = self.searcher.search(
            query,
            self.k if k is None else k,
            fusion=self.fusion if fusion is None else fusion,
            candidates=self.candidates if candidates is None else candidates,
        )
        return [document_from_hit(hit) for hit in hits]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        fusion: Fusion | None = None,
        candidates: int | None = None,
    ) -> list[Document]:
        hits = await self.searcher.asearch(
            query,
            self.k if k is None else k,
            fusion=self.fusion if fusion is None else fusion,
            candidates=self.candidates if candidates is None else candidates,
        )
        return [document_from_hit(hit) for hit in hits]
