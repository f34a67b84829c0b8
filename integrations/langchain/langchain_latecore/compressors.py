"""LateInteractionReranker: a LangChain document compressor backed by latecore's cached Reranker."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator
from typing_extensions import Self

from latecore import Reranker, load_encoder
from latecore.base_encoder import BaseEncoder
from latecore.validation import check_optional_count

from ._convert import scored_copy

__all__ = ["LateInteractionReranker"]


class LateInteractionReranker(BaseDocumentCompressor):
    """Rerank documents by ColBERT late interaction (exact MaxSim), with cached documents.

    Document multivectors go through a latecore ``MultivectorCache``: a document
    seen before, for any query and in any process sharing the cache directory, is
    not encoded again, so a warm rerank costs little more than encoding the query.
    Each returned document is a deep copy of an input document (same id and
    metadata) with ``metadata["relevance_score"]``, the MaxSim score; the inputs
    are never modified.

    Setup:
        Install ``langchain-latecore`` (and ``langchain-classic`` for
        ``ContextualCompressionRetriever``).

        ```bash
        pip install -U langchain-latecore langchain-classic
        ```

    Key init args:
        model: str | None
            ColBERT model id or local checkpoint (default: ``$LATECORE_MODEL``,
            else ``answerdotai/answerai-colbert-small-v1``).
        top_n: int | None
            Number of documents to return, at least 1 (default 3); ``None``
            returns all.
        cache_dir: str | None
            Multivector cache directory (default: latecore's, ``$LATECORE_CACHE_DIR``
            or the user cache directory).
        encoder: latecore.BaseEncoder | None
            An already-built encoder to share, instead of loading ``model``. If it
            has no cache, one in ``cache_dir`` is attached.

    Instantiate:
        ```python
        from langchain_latecore import LateInteractionReranker

        reranker = LateInteractionReranker(
            model="answerdotai/answerai-colbert-small-v1", top_n=3
        )
        ```

    Usage:
        ```python
        from langchain_core.documents import Document

        docs = [
            Document("Berlin is the capital of Germany."),
            Document("Paris is the capital of France."),
            Document("Cats sleep most of the day."),
        ]
        reranker.compress_documents(docs, "What is the capital of France?")
        ```

        ```txt
        [Document(metadata={'relevance_score': 24.1},
                  page_content='Paris is the capital of France.'), ...]
        ```

    Use within a chain:
        ```python
        from langchain_classic.retrievers import ContextualCompressionRetriever
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_core.runnables import RunnablePassthrough
        from langchain_openai import ChatOpenAI

        retriever = ContextualCompressionRetriever(
            base_compressor=reranker,
            base_retriever=vectorstore.as_retriever(search_kwargs={"k": 20}),
        )

        prompt = ChatPromptTemplate.from_template(
            \"\"\"Answer the question based only on the context provided.

        Context: {context}

        Question: {question}\"\"\"
        )


        def format_docs(docs):
            return "\\n\\n".join(doc.page_content for doc in docs)


        chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt
            | ChatOpenAI(model="gpt-4o-mini")
            | StrOutputParser()
        )

        chain.invoke("What is the capital of France?")
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: str | None = Field(
        default=None,
        description="ColBERT model id or local checkpoint; None lets latecore choose. "
        "Not used when an encoder is given.",
    )
    top_n: int | None = Field(
        default=3, description="Number of documents to return (at least 1); None returns all."
    )
    device: str | None = Field(
        default=None, description="Torch device of a loaded model; None picks CUDA if available."
    )
    cache_dir: str | None = Field(
        default=None, description="Multivector cache directory; None uses latecore's default."
    )
    encoder: BaseEncoder | None = Field(
        default=None,
        exclude=True,
        description="An already-built latecore encoder to use instead of loading a model.",
    )

    _reranker: Reranker = PrivateAttr()

    @field_validator("top_n", mode="before")
    @classmethod
    def _check_top_n(cls, value: object) -> int | None:
        return check_optional_count(value, "top_n", minimum=1)

    @model_validator(mode="after")
    def _build_reranker(self) -> Self:
        encoder = load_encoder(
            self.model,
            encoder=self.encoder,
            device=self.device,
            cache_dir=self.cache_dir,
            require_cache=True,
        )
        self._reranker = Reranker(encoder)
        return self

    @property
    def reranker(self) -> Reranker:
        """The latecore reranker doing the work (its ``encoder`` holds the cache)."""
        return self._reranker

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query`` and keep the best ``top_n``.

        Parameters
        ----------
        documents
            The candidates; their ``page_content`` is what is scored.
        query
            The query.
        callbacks
            Unused; accepted for the ``BaseDocumentCompressor`` interface.

        Returns
        -------
        list of Document
            Copies of the best documents, best first (ties keep input order), each
            with ``metadata["relevance_score"]``.
        """
        texts = [doc.page_content for doc in documents]
        results = self._reranker.rerank(query, texts, top_k=self.top_n)
        return [scored_copy(documents[r.index], r.score) for r in results]

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """:meth:`compress_documents` in a worker thread, so the event loop is not blocked."""
        texts = [doc.page_content for doc in documents]
        results = await self._reranker.arerank(query, texts, top_k=self.top_n)
        return [scored_copy(documents[r.index], r.score) for r in results]
