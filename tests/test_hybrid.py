"""HybridSearcher: fusion arithmetic, candidate sets, add/delete sync, edge cases, real rankings."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import bm25s
import numpy as np
import pytest

from latecore import Encoder, HybridHit, HybridSearcher, LateIndex, maxsim
from latecore.base_encoder import BaseEncoder
from latecore.hybrid import fuse
from latecore.testing import FakeEncoder

# --- fusion arithmetic, by hand ------------------------------------------------------------

BM25 = [4.0, 3.0, 2.0, 1.0]
COLBERT = [1.0, 4.0, 3.0, 2.0]


def test_rrf_scores_equal_hand_computation() -> None:
    fused = fuse(BM25, COLBERT, "rrf", rrf_k=60)
    # BM25 ranks 1, 2, 3, 4; ColBERT ranks 4, 1, 2, 3.
    expected = [1 / 61 + 1 / 64, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62, 1 / 64 + 1 / 63]
    assert fused.bm25_ranks.tolist() == [1, 2, 3, 4]
    assert fused.colbert_ranks.tolist() == [4, 1, 2, 3]
    assert fused.scores.tolist() == pytest.approx(expected, abs=1e-12)
    assert fused.order.tolist() == [1, 0, 2, 3]
    small_k = fuse(BM25, COLBERT, "rrf", rrf_k=1)
    assert small_k.scores[0] == pytest.approx(1 / 2 + 1 / 5)


def test_linear_scores_equal_hand_computation() -> None:
    fused = fuse(BM25, COLBERT, "linear", alpha=0.25, normalization="minmax")
    # min-max: bm25 -> 1, 2/3, 1/3, 0; colbert -> 0, 1, 2/3, 1/3.
    expected = [
        0.25 * 0 + 0.75 * 1,
        0.25 * 1 + 0.75 * 2 / 3,
        0.25 * 2 / 3 + 0.75 * 1 / 3,
        0.25 * 1 / 3 + 0.75 * 0,
    ]
    assert fused.scores.tolist() == pytest.approx(expected, abs=1e-12)
    # Documents 0 and 1 tie at 0.75: the better BM25 rank (document 0) comes first.
    assert fused.order.tolist() == [0, 1, 2, 3]
    assert fuse(BM25, COLBERT, "linear", alpha=1.0).order.tolist() == [1, 2, 3, 0]
    assert fuse(BM25, COLBERT, "linear", alpha=0.0).order.tolist() == [0, 1, 2, 3]


def test_rerank_is_maxsim_order_with_ties_broken_by_bm25_rank() -> None:
    fused = fuse([1.0, 3.0, 2.0], [5.0, 5.0, 9.0], "rerank")
    assert fused.scores.tolist() == [5.0, 5.0, 9.0]
    assert fused.order.tolist() == [2, 1, 0]
    assert fused.colbert_ranks.tolist() == [3, 2, 1]


def test_linear_with_constant_stage_normalises_to_one() -> None:
    fused = fuse([2.0, 2.0], [3.0, 1.0], "linear", alpha=0.5, normalization="minmax")
    assert fused.scores.tolist() == pytest.approx([0.5 * 1 + 0.5 * 1, 0.5 * 0 + 0.5 * 1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fusion": "sum"}, "fusion must be one of"),
        ({"candidates": 0}, "candidates must be a positive integer"),
        ({"alpha": 1.5}, "alpha must be between 0 and 1"),
        ({"rrf_k": -1}, "rrf_k must be a non-negative integer"),
        ({"stopwords": "klingon"}, "not recognized"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HybridSearcher(FakeEncoder(), **kwargs)


# --- end to end with the fake encoder ----------------------------------------------------------

CORPUS = {
    "paris": "paris is the capital and largest city of france",
    "berlin": "berlin is the capital of germany and a large city",
    "rome": "rome was the capital of an empire; rome is in italy",
    "lyon": "lyon is a city in france known for food",
    "stop": "it is the one that is in the and of the",
    "cats": "cats purr and sleep",
}


@pytest.fixture
def searcher() -> HybridSearcher:
    """BM25 nominates, MaxSim reranks: the ``candidates_from="bm25"`` contract."""
    return HybridSearcher.from_texts(
        list(CORPUS.values()), FakeEncoder(), ids=list(CORPUS), candidates_from="bm25"
    )


def _bm25_reference(texts: list[str], query: str) -> np.ndarray:
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
    return np.asarray(retriever.get_scores(tokens))


def test_hits_carry_honest_stage_scores(searcher: HybridSearcher) -> None:
    query = "which city is the capital of france"
    hits = searcher.search(query, k=10, fusion="rrf")
    bm25 = dict(zip(CORPUS, _bm25_reference(list(CORPUS.values()), query), strict=True))
    matching = {doc_id for doc_id, score in bm25.items() if score > 0}
    assert {h.id for h in hits} == matching
    encoder = searcher.encoder
    query_vectors = encoder.encode_queries([query])[0]
    for hit in hits:
        assert isinstance(hit, HybridHit)
        assert hit.text == CORPUS[hit.id]
        assert hit.bm25_score == pytest.approx(bm25[hit.id], rel=1e-6)
        reference = float(maxsim(query_vectors, encoder.encode_documents([hit.text]))[0])
        assert hit.colbert_score == pytest.approx(reference, abs=5e-3)  # float16 storage
        assert hit.score == pytest.approx(1 / (60 + hit.bm25_rank) + 1 / (60 + hit.colbert_rank))
    by_bm25 = sorted(hits, key=lambda h: h.bm25_rank)
    assert [h.bm25_rank for h in by_bm25] == list(range(1, len(hits) + 1))
    assert [h.bm25_score for h in by_bm25] == sorted((h.bm25_score for h in hits), reverse=True)
    by_colbert = sorted(hits, key=lambda h: h.colbert_rank)
    assert [h.colbert_score for h in by_colbert] == sorted(
        (h.colbert_score for h in hits), reverse=True
    )
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_linear_hits_follow_min_max_formula(searcher: HybridSearcher) -> None:
    searcher.alpha = 0.3
    searcher.normalization = "minmax"
    hits = searcher.search("capital city of france", k=100, fusion="linear")
    assert len(hits) >= 3
    bm25 = np.array([h.bm25_score for h in hits])
    colbert = np.array([h.colbert_score for h in hits])
    norm_b = (bm25 - bm25.min()) / (bm25.max() - bm25.min())
    norm_c = (colbert - colbert.min()) / (colbert.max() - colbert.min())
    assert [h.score for h in hits] == pytest.approx((0.3 * norm_c + 0.7 * norm_b).tolist())


def test_rerank_never_returns_a_document_outside_the_bm25_candidates(
    searcher: HybridSearcher,
) -> None:
    query = "it is that the city is the capital of it"
    # By MaxSim alone the stopword-only document wins: the fake encoder matches "the", "of"...
    assert searcher.index.search(query, k=1)[0].id == "stop"
    bm25 = _bm25_reference(list(CORPUS.values()), query)
    order = [list(CORPUS)[i] for i in np.argsort(-bm25, kind="stable") if bm25[i] > 0]
    for n in (1, 2, 3, 100):
        hits = searcher.search(query, k=10, fusion="rerank", candidates=n)
        assert {h.id for h in hits} <= set(order[:n])
        assert len(hits) == min(n, len(order))
        assert "stop" not in {h.id for h in hits}
        assert [h.score for h in hits] == [h.colbert_score for h in hits]
        assert [h.colbert_rank for h in hits] == list(range(1, len(hits) + 1))


def test_add_and_delete_reach_both_stages(searcher: HybridSearcher) -> None:
    assert searcher.search("madrid spain") == []
    searcher.add(["madrid is the capital of spain"], ids=["madrid"], metadatas=[{"lang": "es"}])
    assert len(searcher) == len(CORPUS) + 1
    hits = searcher.search("madrid spain")
    assert [h.id for h in hits] == ["madrid"]
    assert hits[0].bm25_score > 0 and hits[0].colbert_score > 0
    assert hits[0].metadata == {"lang": "es"}
    assert searcher.delete(["madrid", "unknown"]) == 1
    assert searcher.search("madrid spain") == []
    assert "madrid" not in searcher.index
    # Replacing a document's text under the same id replaces it in BM25 too.
    searcher.add(["cats chase mice"], ids=["cats"])
    assert searcher.search("purr") == []
    assert [h.id for h in searcher.search("mice")] == ["cats"]


def test_from_index_builds_bm25_over_stored_texts() -> None:
    index = LateIndex(FakeEncoder())
    index.add(list(CORPUS.values()), ids=list(CORPUS))
    searcher = HybridSearcher.from_index(index, fusion="rrf", candidates_from="bm25")
    assert searcher.index is index and len(searcher) == len(CORPUS)
    assert searcher.search("germany", k=1)[0].id == "berlin"
    index.delete(["berlin"])  # changed behind the searcher's back: the count change is seen
    assert searcher.search("germany") == []


def test_index_with_a_different_encoder_is_refused() -> None:
    index = LateIndex(FakeEncoder(name="one"))
    with pytest.raises(ValueError, match="different encoder"):
        HybridSearcher(FakeEncoder(name="two"), index=index)


def test_empty_corpus_empty_texts_and_empty_queries() -> None:
    assert HybridSearcher(FakeEncoder()).search("anything") == []
    blank = HybridSearcher.from_texts(["", "", "   "], FakeEncoder(), candidates_from="bm25")
    assert len(blank) == 3
    assert blank.search("anything") == []
    assert blank.search_batch(["a query", ""]) == [[], []]
    full = HybridSearcher.from_texts(["paris is in france", ""], FakeEncoder())
    assert full.search("") == [] and full.search("   ") == []
    # only stopwords: nothing to match in BM25; MaxSim still nominates when asked to
    assert full.search("the of and", candidates_from="bm25") == []
    assert all(h.bm25_rank is None for h in full.search("the of and", candidates_from="both"))
    assert full.search("france", k=0) == []
    assert full.search_batch([]) == []
    assert [h.text for h in full.search("france", candidates_from="bm25")] == ["paris is in france"]


def test_search_batch_and_asearch_agree_with_search(searcher: HybridSearcher) -> None:
    queries = ["capital of germany", "", "cats sleep", "france food"]
    batch = searcher.search_batch(queries, k=3, fusion="rrf")
    assert batch == [searcher.search(q, k=3, fusion="rrf") for q in queries]
    assert asyncio.run(searcher.asearch("cats sleep", k=2)) == searcher.search("cats sleep", k=2)
    with pytest.raises(TypeError, match="sequence of queries"):
        searcher.search_batch("one query")  # type: ignore[arg-type]


def test_stemming_matches_word_forms() -> None:
    texts = ["the dog runs in the park", "cats sleep all day"]
    plain = HybridSearcher.from_texts(
        texts, FakeEncoder(), ids=["dog", "cat"], stemmer=None, candidates_from="bm25"
    )
    assert plain.search("running") == []
    stemmed = HybridSearcher.from_texts(  # English stemming is the default
        texts, FakeEncoder(), ids=["dog", "cat"], candidates_from="bm25"
    )
    assert stemmed.stemmer == "english"
    assert [h.id for h in stemmed.search("running")] == ["dog"]
    with pytest.raises(ValueError, match="unknown stemmer language"):
        HybridSearcher(FakeEncoder(), stemmer="elvish")


# --- real rankings: all-MiniLM-L6-v2 as a zero-shot ColBERT -------------------------------------

PASSAGES = {
    "bees": "Honeybees turn flower nectar into honey by adding enzymes and fanning it with "
    "their wings until most of the water evaporates.",
    "wasps": "Wasps build paper nests from chewed wood fibres and, unlike bees, make no honey.",
    "sky": "The sky is blue because air molecules scatter blue sunlight more strongly than red.",
    "sunset": "Sunsets look red because light crosses more air when the sun is low in the sky.",
    "seasons": "Earth has seasons because its axis is tilted, so each hemisphere gets more "
    "direct sunlight for part of the year.",
    "moon": "The Moon takes about 27 days to orbit Earth and always shows the same face.",
    "printing": "Johannes Gutenberg built a printing press with movable metal type in Mainz "
    "around 1440.",
    "paper": "Paper was first made in China from plant fibres, rags and old fishing nets.",
    "vaccine": "A vaccine trains the immune system with a harmless piece of a germ, so the "
    "body can fight the real infection later.",
    "antibiotic": "Antibiotics kill bacteria but do not work against viruses such as the flu.",
    "bread": "Bread rises because yeast ferments sugar in the dough and releases carbon dioxide.",
    "cheese": "Cheese is made by curdling milk and pressing the curds; ageing adds flavour.",
    "volcano": "A volcano erupts when molten rock called magma rises through the crust.",
    "earthquake": "Earthquakes happen when rocks along a fault slip suddenly and release energy.",
    "everest": "Mount Everest is the highest mountain above sea level, about 8,849 metres.",
    "piano": "A piano makes sound when felt hammers strike steel strings inside its case.",
    "guitar": "A guitar usually has six strings, and pressing them on frets changes the pitch.",
    "python": "Python is a programming language known for readable code and a large library.",
    "database": "A database stores records in tables that can be searched with SQL queries.",
    "rust": "Iron rusts when it reacts with oxygen and water, forming reddish iron oxide.",
    "whale": "The blue whale is the largest animal ever known; it is a mammal that breathes air.",
    "penguin": "Penguins are flightless birds whose wings have become flippers for swimming.",
    "marathon": "A marathon race is 42.195 kilometres long, named after a Greek legend.",
    "chess": "Chess is played on a board of 64 squares, and the goal is to checkmate the king.",
}

LABELLED = {
    "how do bees make honey": "bees",
    "why is the sky blue": "sky",
    "what causes the seasons on earth": "seasons",
    "who invented the printing press": "printing",
    "how does a vaccine help the body fight infection": "vaccine",
    "why does bread dough rise": "bread",
    "what makes a volcano erupt": "volcano",
    "how long is a marathon race": "marathon",
}


@pytest.fixture(scope="module")
def minilm_searcher(minilm_encoder: Encoder) -> HybridSearcher:
    return HybridSearcher.from_texts(
        list(PASSAGES.values()), minilm_encoder, ids=list(PASSAGES), candidates_from="bm25"
    )


def test_minilm_rerank_puts_every_labelled_answer_in_the_top_3(
    minilm_searcher: HybridSearcher,
) -> None:
    results = minilm_searcher.search_batch(list(LABELLED), k=3, fusion="rerank")
    misses = {
        query: [h.id for h in hits]
        for (query, answer), hits in zip(LABELLED.items(), results, strict=True)
        if answer not in [h.id for h in hits]
    }
    assert misses == {}
    for hits in results:
        for hit in hits:
            for name in ("bm25_score", "colbert_score", "score"):
                assert math.isfinite(getattr(hit, name)), name
            assert hit.bm25_score > 0
            assert 1 <= hit.bm25_rank <= len(PASSAGES)
            assert 1 <= hit.colbert_rank <= len(PASSAGES)
            assert hit.score == hit.colbert_score


def test_minilm_colbert_scores_equal_plain_maxsim(
    minilm_searcher: HybridSearcher, minilm_encoder: BaseEncoder
) -> None:
    query = "why is the sky blue"
    hits = minilm_searcher.search(query, k=5)
    vectors = minilm_encoder.encode_queries([query])[0]
    reference = maxsim(vectors, minilm_encoder.encode_documents([h.text for h in hits]))
    assert [h.colbert_score for h in hits] == pytest.approx(reference.tolist(), abs=1e-2)


def test_search_batch_encodes_all_queries_in_one_model_call() -> None:
    encoder = FakeEncoder()
    searcher = HybridSearcher.from_texts(
        ["paris is in france", "berlin is in germany", "rome is in italy"],
        encoder,
        candidates_from="bm25",
    )
    before = encoder.calls
    batch = searcher.search_batch(["paris france", "berlin", "nothing matches zzz", "rome"], k=2)
    assert encoder.calls == before + 1
    assert [len(hits) for hits in batch] == [1, 1, 0, 1]
    for query, hits in zip(["paris france", "berlin"], batch, strict=False):
        single = searcher.search(query, k=2)
        assert [h.id for h in hits] == [h.id for h in single]
        assert [h.colbert_score for h in hits] == pytest.approx(
            [h.colbert_score for h in single], abs=1e-5
        )
    with pytest.raises(ValueError, match="id lists"):
        searcher.index.score_batch(["a", "b"], [["x"]])
