"""explain: contributions add up to MaxSim, spans index the document; highlight escapes HTML."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import load_quietly

from latecore import Encoder, MultivectorCache, explain, highlight, maxsim
from latecore.base_encoder import BaseEncoder
from latecore.explain import Explanation
from latecore.testing import FakeEncoder

PAIRS = [
    (
        "why is the sky blue?",
        "The sky is blue because air scatters blue light (Rayleigh scattering).",
    ),
    (
        "who built the printing press",
        "  Gutenberg's press, built c. 1440 in Mainz, used metal type!  ",
    ),
    ("Eiffel tower height", "The Eiffel Tower is 330 m tall;\n\nit was finished in 1889."),
    ("anything at all", ""),
]

LONG_DOCUMENT = " ".join(
    f"Sentence {i} mentions honey, bees, wax and the hive's structure." for i in range(40)
)


def _reference(encoder: BaseEncoder, query: str, document: str) -> float:
    return float(
        maxsim(encoder.encode_queries([query])[0], encoder.encode_documents([document]))[0]
    )


def _surface(text: str) -> str:
    """Lowercased, accents stripped: what an uncased WordPiece token spells."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _check_spans(explanation: Explanation) -> None:
    for match in explanation.matches:
        if match.document_span is not None:
            start, end = match.document_span
            assert 0 <= start < end <= len(explanation.document)
            piece = explanation.document[start:end]
            assert _surface(piece) == match.document_token.removeprefix("##"), match
        if match.query_span is not None:
            start, end = match.query_span
            piece = explanation.query[start:end]
            assert _surface(piece) == match.query_token.removeprefix("##"), match


@pytest.mark.parametrize(("query", "document"), [*PAIRS, ("honey bees hive", LONG_DOCUMENT)])
def test_contributions_sum_to_maxsim_and_spans_index_the_document(
    minilm_encoder: Encoder, query: str, document: str
) -> None:
    explanation = explain(minilm_encoder, query, document)
    reference = _reference(minilm_encoder, query, document)
    total = sum(m.contribution for m in explanation.matches)
    assert total == pytest.approx(reference, abs=1e-4)
    assert explanation.score == pytest.approx(reference, abs=1e-4)
    assert len(explanation.matches) == minilm_encoder.encode_queries([query])[0].shape[0]
    assert all(m.contribution == m.similarity for m in explanation.matches)
    _check_spans(explanation)


def test_every_document_token_span_slices_its_surface_form(minilm_encoder: Encoder) -> None:
    # A document explained against itself matches each of its own tokens at least once.
    document = "Vaccines train the immune system; the body then fights off the real infection."
    explanation = explain(minilm_encoder, document, document)
    spans = {m.document_span for m in explanation.matches if m.document_span is not None}
    words = {document[s:e].lower() for s, e in spans}
    assert {"vaccines", "immune", "system", "infection"} <= words
    _check_spans(explanation)


def test_special_tokens_have_no_span(minilm_encoder: Encoder) -> None:
    explanation = explain(minilm_encoder, "blue sky", "The sky is blue.")
    first, marker, *_, last = explanation.matches
    assert first.query_token == "[CLS]" and first.query_span is None and first.is_special
    assert marker.is_special and marker.query_span is None
    assert last.query_token == "[SEP]" and last.is_special
    for match in explanation.matches:
        if match.document_token in ("[CLS]", "[SEP]", "[unused1]"):
            assert match.document_span is None
    words = [m for m in explanation.matches if not m.is_special]
    assert [m.query_token for m in words] == ["blue", "sky"]
    assert [explanation.document[slice(*m.document_span)] for m in words] == ["blue", "sky"]


def test_cached_float16_vectors_are_what_the_contributions_add_up_to(
    minilm_encoder: Encoder, tmp_path: Path
) -> None:
    with MultivectorCache(tmp_path / "cache", dtype="float16") as cache:
        encoder = minilm_encoder.with_cache(cache)
        query, document = PAIRS[0]
        explanation = explain(encoder, query, document)
        assert explanation.score == pytest.approx(_reference(encoder, query, document), abs=1e-4)


def test_query_expansion_tokens_are_labelled(tiny_checkpoint: Path) -> None:
    encoder = load_quietly(tiny_checkpoint, do_query_expansion=True, query_length=12)
    query, document = "the cat and the dog", "a cat sleeps in the sun, a dog barks."
    explanation = explain(encoder, query, document)
    assert len(explanation.matches) == 12
    expansion = [m for m in explanation.matches if m.is_expansion]
    assert expansion and all(m.query_token == "[MASK]" for m in expansion)
    assert all(m.query_span is None and m.label == "[MASK] (expansion)" for m in expansion)
    assert not any(m.is_expansion for m in explanation.matches[:7])
    assert explanation.score == pytest.approx(_reference(encoder, query, document), abs=1e-4)
    _check_spans(explanation)


def test_fake_encoder_explanations_add_up() -> None:
    encoder = FakeEncoder()
    explanation = explain(encoder, "Paris, France", "I love PARIS in spring.")
    assert explanation.score == pytest.approx(
        _reference(encoder, "Paris, France", "I love PARIS in spring."), abs=1e-5
    )
    paris = explanation.matches[1]
    assert explanation.top(1) == [paris]
    assert (paris.query_token, paris.document_span, paris.similarity) == (
        "paris",
        (7, 12),
        pytest.approx(1.0),
    )


def test_encoder_without_token_offsets_is_refused() -> None:
    class Opaque(BaseEncoder):
        def _model_fingerprint_fields(self) -> dict[str, Any]:
            return {"model_id": "opaque"}

        def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
            return [np.ones((1, 4), dtype=np.float32) for _ in texts]

    with pytest.raises(TypeError, match="token_spans"):
        explain(Opaque(), "q", "d")


def test_highlight_escapes_html_and_marks_matches() -> None:
    document = '<script>alert("x")</script> Paris & "Lyon" are in France'
    explanation = explain(FakeEncoder(), "paris lyon", document)
    rendered = highlight(explanation, "html")
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered
    assert "&quot;" in rendered and "&amp;" in rendered
    assert '<mark title="paris (1.000)">Paris</mark>' in rendered
    assert '<mark title="lyon (1.000)">Lyon</mark>' in rendered
    assert rendered.startswith("<div") and rendered.endswith("</div>")
    assert explanation._repr_html_() == rendered

    ansi = highlight(explanation, "ansi")
    assert "\x1b[1;33mParis\x1b[0m" in ansi and "\x1b[1;33mLyon\x1b[0m" in ansi
    assert ansi.replace("\x1b[1;33m", "").replace("\x1b[0m", "") == document
    assert highlight(explanation, "text").count("**") == 4
    assert highlight(explanation, "text", min_similarity=1.01) == document
    with pytest.raises(ValueError, match="style"):
        highlight(explanation, "pdf")  # type: ignore[arg-type]


def test_highlight_merges_word_pieces_of_one_word(minilm_encoder: Encoder) -> None:
    explanation = explain(minilm_encoder, "Eiffel", "The Eiffel Tower.")
    assert highlight(explanation, "text") == "The **Eiffel** Tower."


def test_demo_highlights_mark_content_words_not_function_words(minilm_encoder: Encoder) -> None:
    """The demo's hits (its sample queries, top 3 each) mark what carries the score: the
    query's content words and their matches, never "the", "of", "by" or punctuation."""
    import re

    from latecore import HybridSearcher
    from latecore.documents import demo_queries, load_documents, sample_corpus_path
    from latecore.lexical import function_words

    chunks = load_documents([sample_corpus_path()])
    searcher = HybridSearcher.from_texts(
        [c.text for c in chunks], minilm_encoder, ids=[c.id for c in chunks]
    )
    skip = function_words("english")
    marked_words: list[str] = []
    for query in demo_queries():
        for hit in searcher.search(query, k=3):
            text = highlight(explain(minilm_encoder, query, hit.text), "text")
            marked = re.findall(r"\*\*(.+?)\*\*", text)
            assert marked, (query, hit.id)
            marked_words += [w.lower() for w in marked]
            everything = highlight(explain(minilm_encoder, query, hit.text), "text", min_share=None)
            assert len(re.findall(r"\*\*", everything)) >= len(re.findall(r"\*\*", text))
    assert not [w for w in marked_words if w in skip or not any(c.isalnum() for c in w)]
    assert {"the", "of", "by"}.isdisjoint(marked_words)
    assert {"sky", "blue", "honey", "printing", "press"} <= set(marked_words)
