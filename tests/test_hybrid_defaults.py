"""The hybrid defaults: better than either stage alone on CACM, and what the adapters and CLI get.

The CACM test encodes the collection's 3,204 abstracts (title + abstract, 3,013
distinct texts) with the bundled MiniLM once per session: about 1.5 minutes on
two cores. It is skipped, with the path it looked at, when the collection is not
beside the repository (``../shared/collections/cacm``).
``benchmarks/eval_hybrid.py`` prints the whole table and the acceptance margins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from latecore import Encoder, HybridSearcher, LateIndex
from latecore.cli import build_parser
from latecore.evaluate import compare_hybrid, load_smart_collection
from latecore.hybrid import DEFAULT_CANDIDATES, DEFAULT_FUSION
from latecore.testing import FakeEncoder

CACM = Path(__file__).resolve().parents[1].parent / "shared" / "collections" / "cacm"

Collection = tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]


@pytest.fixture(scope="session")
def cacm() -> Collection:
    if not (CACM / "cacm.all").is_file():
        pytest.skip(f"the CACM collection is not at {CACM}; see shared/collections/README.md")
    return load_smart_collection(CACM)


@pytest.fixture(scope="session")
def cacm_index(cacm: Collection, minilm_encoder: Encoder) -> LateIndex:
    """CACM encoded once per session by MiniLM as a zero-shot ColBERT."""
    corpus = cacm[0]
    index = LateIndex(minilm_encoder)
    index.add(list(corpus.values()), ids=list(corpus))
    return index


def test_the_defaults_beat_bm25_alone_and_maxsim_alone_on_cacm(
    cacm: Collection, cacm_index: LateIndex
) -> None:
    _, queries, qrels = cacm
    table = compare_hybrid(cacm_index, queries, qrels, k=100, fusions=())
    assert list(table.index) == [
        "BM25 alone",
        "MaxSim alone",
        f"defaults (fusion={DEFAULT_FUSION})",
    ]
    ndcg = table["nDCG@10"].to_dict()
    defaults = ndcg[f"defaults (fusion={DEFAULT_FUSION})"]
    assert defaults > ndcg["BM25 alone"], ndcg
    assert defaults > ndcg["MaxSim alone"], ndcg


def test_the_adapters_and_the_cli_take_the_searchers_defaults() -> None:
    from langchain_latecore import LateInteractionHybridRetriever as LangChainHybrid
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.latecore import LateInteractionHybridRetriever as LlamaHybrid

    encoder = FakeEncoder()
    searcher = HybridSearcher(encoder)
    assert (searcher.fusion, searcher.candidates) == (DEFAULT_FUSION, DEFAULT_CANDIDATES)
    assert DEFAULT_FUSION == "adaptive"
    langchain = LangChainHybrid.from_texts(["cats purr", "dogs bark"], encoder=encoder)
    # The retriever's fields are unset (None): it follows the searcher's, the defaults.
    assert (langchain.fusion, langchain.candidates) == (None, None)
    assert (langchain.searcher.fusion, langchain.searcher.candidates) == (
        DEFAULT_FUSION,
        DEFAULT_CANDIDATES,
    )
    hits = langchain.invoke("cats")
    expected = langchain.searcher.search("cats", k=langchain.k, fusion=DEFAULT_FUSION)
    assert [d.id for d in hits] == [h.id for h in expected]
    assert LangChainHybrid(searcher=searcher).searcher.fusion == DEFAULT_FUSION
    llama = LlamaHybrid([TextNode(text="cats purr", id_="c")], encoder=encoder)
    assert llama.searcher.fusion == DEFAULT_FUSION
    assert llama.searcher.candidates == DEFAULT_CANDIDATES
    args = build_parser().parse_args(["search", "notes.txt", "--query", "why"])
    assert (args.fusion, args.candidates) == (DEFAULT_FUSION, DEFAULT_CANDIDATES)
