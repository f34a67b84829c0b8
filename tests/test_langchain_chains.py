"""End-to-end LCEL RAG chains over langchain-latecore retrievers with the real MiniLM weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel, FakeListLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough
from langchain_latecore import (
    LateInteractionHybridRetriever,
    LateInteractionReranker,
    LateInteractionRetriever,
)

from latecore import Encoder, MultivectorCache

CORPUS = [
    "The Amazon is the largest rainforest on Earth and spans nine countries.",
    "Mitochondria are the powerhouse of the cell, producing ATP.",
    "The Great Wall of China is more than 21,000 kilometres long.",
    "Python was created by Guido van Rossum and first released in 1991.",
    "Honey never spoils because of its low moisture and acidic pH.",
    "The speed of light in a vacuum is about 299,792 kilometres per second.",
]
QUESTION = "Who created the Python programming language?"
ANSWER = "Guido van Rossum created Python."


class PromptRecorder(BaseCallbackHandler):
    """Records the prompts that reach the (fake) model."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_llm_start(self, serialized: Any, prompts: list[str], **kwargs: Any) -> None:
        self.prompts.extend(prompts)

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.prompts.extend(m.content for batch in messages for m in batch)


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(doc.page_content for doc in docs)


@pytest.fixture(params=["late", "hybrid"])
def retriever(
    request: pytest.FixtureRequest, minilm_encoder: Encoder, tmp_path: Path
) -> BaseRetriever:
    encoder = minilm_encoder.with_cache(MultivectorCache(tmp_path))
    cls = LateInteractionRetriever if request.param == "late" else LateInteractionHybridRetriever
    return cls.from_texts(CORPUS, encoder, k=2)


def test_rag_chain_runs_end_to_end(retriever: BaseRetriever) -> None:
    prompt = PromptTemplate.from_template(
        "Answer from the context only.\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
    )
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | prompt
        | FakeListLLM(responses=[ANSWER])
        | StrOutputParser()
    )
    recorder = PromptRecorder()
    assert chain.invoke(QUESTION, config={"callbacks": [recorder]}) == ANSWER
    (sent,) = recorder.prompts
    context = sent.split("Context:\n", 1)[1].split("\n\nQuestion:", 1)[0]
    assert context.split("\n\n")[0] == CORPUS[3]  # the relevant passage comes first
    assert len(context.split("\n\n")) <= 2
    assert sent.endswith(f"Question: {QUESTION}\nAnswer:")


def test_compression_chain_with_a_chat_model(minilm_encoder: Encoder, tmp_path: Path) -> None:
    base = LateInteractionRetriever.from_texts(
        CORPUS, minilm_encoder.with_cache(MultivectorCache(tmp_path)), k=6
    )
    reranker = LateInteractionReranker(encoder=base.index.encoder, top_n=1)
    retriever = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=base)
    prompt = ChatPromptTemplate.from_template("Context: {context}\n\nQuestion: {question}")
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | prompt
        | FakeListChatModel(responses=[ANSWER])
        | StrOutputParser()
    )
    recorder = PromptRecorder()
    assert chain.invoke(QUESTION, config={"callbacks": [recorder]}) == ANSWER
    assert recorder.prompts == [f"Context: {CORPUS[3]}\n\nQuestion: {QUESTION}"]
