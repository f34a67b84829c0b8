"""latecore.evaluate: metrics equal the hand computation, and every kind of system plugs in."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import numpy as np
import pytest

from latecore import Evaluation, HybridSearcher, LateIndex, Reranker, compare, evaluate
from latecore.evaluate import load_eval_set, markdown_table, plot_comparison
from latecore.testing import FakeEncoder

matplotlib.use("Agg")

# Two queries with graded judgements (grade 0: judged, not relevant).
QUERIES = {"q1": "first question", "q2": "second question"}
QRELS = {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d4": 1}}
RANKINGS = {
    "first question": ["d3", "d1", "d5", "d2"],
    "second question": ["d6", "d7", "d4"],
}

CORPUS = {
    "paris": "paris is the capital of france",
    "berlin": "berlin is the capital of germany",
    "cats": "cats purr and sleep all day",
    "dogs": "dogs bark at the postman",
    "market": "the stock market fell on monday",
}
CORPUS_QUERIES = {"a": "capital of germany", "b": "why do cats purr", "c": "stock market news"}
CORPUS_QRELS = {"a": {"berlin": 2, "paris": 1}, "b": {"cats": 1}, "c": {"market": 1}}


def toy_system(query: str) -> list[str]:
    return RANKINGS[query]


def test_ndcg_recall_and_mrr_equal_the_hand_computation() -> None:
    result = evaluate(toy_system, QUERIES, QRELS, k=2)

    # q1 ranks d3 (grade 0), d1 (grade 2), d5 (unjudged), d2 (grade 1);
    # linear gain: a grade-g document at rank i adds g / log2(i + 1).
    dcg_q1 = 0 / math.log2(2) + 2 / math.log2(3) + 0 / math.log2(4) + 1 / math.log2(5)
    ideal_q1 = 2 / math.log2(2) + 1 / math.log2(3)  # d1 then d2
    # q2 finds its only relevant document at rank 3.
    dcg_q2 = 1 / math.log2(4)
    ideal_q2 = 1 / math.log2(2)
    ndcg = {"q1": dcg_q1 / ideal_q1, "q2": dcg_q2 / ideal_q2}
    assert ndcg["q1"] == pytest.approx(0.64332, abs=1e-5)
    assert ndcg["q2"] == pytest.approx(0.5)
    # Recall@2: q1 has d1 of {d1, d2} in its top 2; q2 has nothing relevant in its top 2.
    recall = {"q1": 1 / 2, "q2": 0 / 1}
    # MRR@10: first relevant (grade >= 1) at rank 2 for q1 (d3 has grade 0), rank 3 for q2.
    mrr = {"q1": 1 / 2, "q2": 1 / 3}

    for qid in QUERIES:
        assert result.per_query[qid]["nDCG@10"] == pytest.approx(ndcg[qid], abs=1e-12)
        assert result.per_query[qid]["Recall@2"] == pytest.approx(recall[qid], abs=1e-12)
        assert result.per_query[qid]["MRR@10"] == pytest.approx(mrr[qid], abs=1e-12)
    assert result.metrics == pytest.approx(
        {
            "nDCG@10": (ndcg["q1"] + ndcg["q2"]) / 2,
            "Recall@2": (1 / 2 + 0) / 2,
            "MRR@10": (1 / 2 + 1 / 3) / 2,
        },
        abs=1e-12,
    )
    assert list(result.metrics) == ["nDCG@10", "Recall@2", "MRR@10"]
    assert result.rankings == {"q1": RANKINGS["first question"], "q2": RANKINGS["second question"]}
    # Recall at a deeper cutoff finds everything both queries returned.
    assert evaluate(toy_system, QUERIES, QRELS, k=4).metrics["Recall@4"] == 1.0


def test_the_systems_order_is_kept_not_resorted_by_id() -> None:
    # trec_eval breaks score ties by document id; the system's own order must win.
    qrels = {"q": {"a": 1}}
    first = evaluate(lambda q: ["a", "z"], {"q": "x"}, qrels)
    last = evaluate(lambda q: ["z", "a"], {"q": "x"}, qrels)
    assert first.metrics["MRR@10"] == 1.0
    assert last.metrics["MRR@10"] == 0.5


def test_rankings_are_cut_to_depth_and_deduplicated() -> None:
    qrels = {"q": {"rel": 1}}
    deep = evaluate(lambda q: [f"n{i}" for i in range(10)] + ["rel"], {"q": "x"}, qrels)
    assert deep.metrics == {"nDCG@10": 0.0, "Recall@10": 0.0, "MRR@10": 0.0}
    assert len(deep.rankings["q"]) == 10
    repeated = evaluate(lambda q: ["n0", "n0", "rel"], {"q": "x"}, qrels)
    assert repeated.rankings["q"] == ["n0", "rel"]
    assert repeated.metrics["MRR@10"] == 0.5


def test_a_query_without_results_scores_zero_and_counts_in_the_mean() -> None:
    result = evaluate(lambda q: ["d1"] if q == "first question" else [], QUERIES, QRELS)
    assert result.per_query["q2"] == {"nDCG@10": 0.0, "Recall@10": 0.0, "MRR@10": 0.0}
    assert result.metrics["MRR@10"] == pytest.approx(0.5)
    nothing = evaluate(lambda q: [], QUERIES, QRELS)
    assert nothing.metrics == {"nDCG@10": 0.0, "Recall@10": 0.0, "MRR@10": 0.0}


def test_numpy_integer_grades_are_accepted() -> None:
    qrels = {qid: {d: np.int64(g) for d, g in grades.items()} for qid, grades in QRELS.items()}
    assert (
        evaluate(toy_system, QUERIES, qrels).metrics == evaluate(toy_system, QUERIES, QRELS).metrics
    )


def test_queries_without_relevant_judgements_are_left_out() -> None:
    qrels = {**QRELS, "q3": {"d9": 0}}
    result = evaluate(toy_system, {**QUERIES, "q3": "unused"}, qrels)
    assert set(result.per_query) == {"q1", "q2"}


def test_bad_inputs_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="no text"):
        evaluate(toy_system, {"q1": "first question"}, QRELS)
    with pytest.raises(ValueError, match="no query with a relevant"):
        evaluate(toy_system, QUERIES, {"q1": {"d1": 0}})
    with pytest.raises(TypeError, match="integers"):
        evaluate(toy_system, QUERIES, {"q1": {"d1": 0.5}})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="integers"):
        evaluate(toy_system, QUERIES, {"q1": {"d1": "2"}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="k must be"):
        evaluate(toy_system, QUERIES, QRELS, k=0)
    with pytest.raises(TypeError, match="cannot search"):
        evaluate(42, QUERIES, QRELS)
    with pytest.raises(ValueError, match="document id"):
        evaluate(lambda q: [3.5], QUERIES, QRELS)


@pytest.fixture
def index() -> LateIndex:
    index = LateIndex(FakeEncoder())
    index.add(list(CORPUS.values()), ids=list(CORPUS))
    return index


def expected_rankings(index: LateIndex) -> dict[str, list[str]]:
    return {qid: [h.id for h in index.search(q, k=10)] for qid, q in CORPUS_QUERIES.items()}


def test_a_late_index_is_searched_in_one_batch(index: LateIndex) -> None:
    encoder = index.encoder
    assert isinstance(encoder, FakeEncoder)
    calls = encoder.calls
    result = evaluate(index, CORPUS_QUERIES, CORPUS_QRELS)
    assert encoder.calls == calls + 1  # all queries in one encode call
    assert result.name == "LateIndex"
    assert result.rankings == expected_rankings(index)
    assert result.per_query["a"]["MRR@10"] == 1.0  # "berlin" first for "capital of germany"
    assert result.seconds > 0 and result.ms_per_query > 0
    frame = result.to_frame()
    assert list(frame.index) == ["a", "b", "c"] and list(frame.columns) == list(result.metrics)


def test_a_hybrid_searcher_and_a_reranker_callable(index: LateIndex) -> None:
    searcher = HybridSearcher.from_index(index)
    hybrid = evaluate(searcher, CORPUS_QUERIES, CORPUS_QRELS, name="hybrid")
    assert hybrid.rankings == {
        qid: [h.id for h in searcher.search(q, k=10)] for qid, q in CORPUS_QUERIES.items()
    }
    reranker = Reranker(index.encoder)
    ids, texts = list(CORPUS), list(CORPUS.values())

    def rerank(query: str) -> list[str]:
        return [ids[r.index] for r in reranker.rerank(query, texts)]

    reranked = evaluate(rerank, CORPUS_QUERIES, CORPUS_QRELS)
    assert reranked.name == "rerank"
    # Exact MaxSim over the same vectors: the reranker ranks like the index.
    assert reranked.rankings == expected_rankings(index)


def test_a_langchain_retriever_is_asked_for_enough_documents(index: LateIndex) -> None:
    from langchain_latecore import LateInteractionRetriever

    retriever = LateInteractionRetriever(index=index, k=1)  # its own k is overridden
    result = evaluate(retriever, CORPUS_QUERIES, CORPUS_QRELS)
    assert result.rankings == expected_rankings(index)
    assert result.metrics == evaluate(index, CORPUS_QUERIES, CORPUS_QRELS).metrics


def test_a_langchain_document_without_id_needs_id_key() -> None:
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class NoIds(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: object) -> list[Document]:
            return [Document("text", metadata={"doc": "d4"})]

    with pytest.raises(ValueError, match=r"Document\.id must be set"):
        evaluate(NoIds(), QUERIES, QRELS)
    assert evaluate(NoIds(), QUERIES, QRELS, id_key="doc").per_query["q2"]["MRR@10"] == 1.0


def test_a_llamaindex_retriever_is_read_through_node_ids(index: LateIndex) -> None:
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.latecore import LateInteractionRetriever

    nodes = [TextNode(text=text, id_=doc_id) for doc_id, text in CORPUS.items()]
    retriever = LateInteractionRetriever(nodes, encoder=FakeEncoder(), similarity_top_k=10)
    result = evaluate(retriever, CORPUS_QUERIES, CORPUS_QRELS)
    assert result.name == "LateInteractionRetriever"
    assert result.rankings == expected_rankings(index)


def test_compare_table_markdown_and_plot() -> None:
    def ideal(query: str) -> list[str]:
        return ["d1", "d2"] if query == "first question" else ["d4"]

    perfect = evaluate(ideal, QUERIES, QRELS, k=2)
    table = compare({"toy": toy_system, "perfect": perfect}, QUERIES, QRELS, k=2)
    assert list(table.index) == ["toy", "perfect"]
    assert list(table.columns) == ["nDCG@10", "Recall@2", "MRR@10", "ms/query"]
    assert table.loc["perfect", "nDCG@10"] == pytest.approx(1.0)
    assert table.loc["toy", "MRR@10"] == pytest.approx(5 / 12)
    text = markdown_table(table, digits=2)
    assert text.splitlines()[0] == "| system | nDCG@10 | Recall@2 | MRR@10 | ms/query |"
    assert "| perfect | 1.00 | 1.00 | 1.00 |" in text
    figure = plot_comparison(table, title="toy")
    axes = figure.axes[0]
    heights = [round(p.get_height(), 6) for p in axes.patches]
    assert len(heights) == 2 * 3  # two systems x three metrics, not ms/query
    assert heights[3:] == [1.0, 1.0, 1.0]  # the second system's bars
    assert axes.get_title() == "toy"
    with pytest.raises(ValueError, match="queries and qrels"):
        compare({"toy": toy_system})
    with pytest.raises(ValueError, match="different metrics"):
        compare({"toy": toy_system, "perfect": perfect}, QUERIES, QRELS, k=5)


def test_the_shipped_eval_set_is_consistent_and_hard_for_bm25() -> None:
    corpus, queries, qrels = load_eval_set()
    assert 40 <= len(corpus) <= 60 and 15 <= len(queries) <= 20
    assert set(qrels) == set(queries)
    for grades in qrels.values():
        assert set(grades) <= set(corpus)
        assert set(grades.values()) <= {0, 1, 2} and 2 in grades.values()
    # BM25 alone (linear fusion with no ColBERT weight) misses some paraphrased queries entirely.
    searcher = HybridSearcher.from_texts(
        list(corpus.values()), FakeEncoder(), ids=list(corpus), fusion="linear", alpha=0.0
    )
    bm25 = evaluate(searcher, queries, qrels)
    assert 0.3 < bm25.metrics["nDCG@10"] < 0.9
    missed: Sequence[str] = [q for q, scores in bm25.per_query.items() if scores["MRR@10"] == 0]
    assert missed, "every query is answered by BM25: the set does not need late interaction"
    assert isinstance(bm25, Evaluation)
