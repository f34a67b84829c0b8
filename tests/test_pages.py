"""Pages: PDFs and images load as pages, a PageEncoder encodes them through the real
transformers path (tiny ColQwen2), through the cache, into a LateIndex."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latecore import LateIndex, MultivectorCache, maxsim
from latecore.documents import load_pages as reexported_load_pages
from latecore.errors import InputError
from latecore.pages import (
    Page,
    image_digest,
    load_image_pages,
    load_pages,
    load_pdf_pages,
    page_image,
)
from latecore.testing import FakeEncoder
from latecore.testing.vision import make_test_pdf
from latecore.vision import PageEncoder

TEXTS = ["paris is the capital of france", None, "berlin is a city in germany"]


@pytest.fixture(scope="module")
def page_encoder(tiny_page_encoder_path: Path) -> PageEncoder:
    return PageEncoder(tiny_page_encoder_path)


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_pdf(
        tmp_path_factory.mktemp("pdf") / "report.pdf", TEXTS, with_table=True, with_chart=True
    )


@pytest.fixture(scope="module")
def pages(pdf: Path) -> list[Page]:
    return load_pdf_pages(pdf, dpi=72)


def test_pdf_pages_carry_ids_text_layers_and_metadata(pdf: Path, pages: list[Page]) -> None:
    assert [p.id for p in pages] == [f"{pdf}:page_{n}" for n in range(1, 6)]
    assert pages[0].text == TEXTS[0] and pages[2].text == TEXTS[2]
    assert pages[1].text == ""  # the scan has no text layer
    assert "paris" in pages[3].text and "seine" in pages[3].text  # the table's cells
    assert "sales chart" in pages[4].text
    first = pages[0]
    assert first.image.mode == "RGB"
    assert first.metadata == {
        "source": str(pdf),
        "page": 1,
        "width": first.image.width,
        "height": first.image.height,
        "dpi": 72,
        "image_path": None,
        "kind": "pdf",
    }
    assert first.image.size == (306, 396)  # 4.25 x 5.5 inches at 72 dpi


def test_dpi_sets_the_rendered_size(pdf: Path) -> None:
    (small, *_) = load_pdf_pages(pdf, dpi=36)
    assert small.image.size == (153, 198)
    with pytest.raises(ValueError, match="dpi"):
        load_pdf_pages(pdf, dpi=0)


def test_page_image_gives_the_same_pixels_back(pdf: Path, tmp_path: Path) -> None:
    rendered = load_pdf_pages(pdf, dpi=40)
    assert image_digest(page_image(rendered[1].metadata)) == rendered[1].image_digest()
    saved = load_pdf_pages(pdf, dpi=40, image_dir=tmp_path / "images")
    assert Path(saved[1].metadata["image_path"]).is_file()
    assert image_digest(page_image(saved[1].metadata)) == rendered[1].image_digest()
    with pytest.raises(InputError, match="image_path"):
        page_image({"page": 1})


def test_image_files_are_one_page_documents(tmp_path: Path) -> None:
    from PIL import Image

    file = tmp_path / "scan.jpg"
    Image.new("RGB", (40, 30), "red").save(file)
    (page,) = load_image_pages(file)
    assert page.id == f"{file}:page_1" and page.text == ""
    assert page.metadata["image_path"] == str(file) and page.metadata["kind"] == "image"
    assert page_image(page.metadata).size == (40, 30)


def test_load_pages_walks_folders_and_refuses_other_files(pdf: Path, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (20, 20), "white").save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("skipped in a folder")
    (tmp_path / "copy.pdf").write_bytes(pdf.read_bytes())
    pages = reexported_load_pages([tmp_path], dpi=30)
    assert [Path(p.id).name for p in pages] == ["a.png:page_1"] + [
        f"copy.pdf:page_{n}" for n in range(1, 6)
    ]
    with pytest.raises(InputError, match="unsupported file type"):
        load_pages([tmp_path / "notes.txt"])
    with pytest.raises(InputError, match="no such file"):
        load_pages([tmp_path / "missing.pdf"])
    with pytest.raises(TypeError, match="one path"):
        load_pages(str(pdf))  # type: ignore[arg-type]
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"not a pdf")
    with pytest.raises(InputError, match="cannot read it as a PDF"):
        load_pdf_pages(broken)


def test_one_pixel_changes_the_digest_and_the_key(page_encoder: PageEncoder) -> None:
    from PIL import Image

    white = Image.new("RGB", (64, 48), "white")
    dotted = white.copy()
    dotted.putpixel((10, 10), (254, 255, 255))
    assert image_digest(white) != image_digest(dotted)
    assert page_encoder.page_key(white) != page_encoder.page_key(dotted)
    assert page_encoder.page_key(white) == page_encoder.page_key(white.copy())


def test_pages_and_queries_encode_to_unit_vectors(
    page_encoder: PageEncoder, pages: list[Page]
) -> None:
    vectors = page_encoder.encode_pages(pages)
    assert len(vectors) == len(pages)
    for array in vectors:
        assert array.dtype == np.float32 and array.shape[1] == page_encoder.dim
        assert 16 <= len(array) <= 200  # tens to a few hundred vectors a page
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1, atol=1e-5)
    (query,) = page_encoder.encode_queries(["where is paris"])
    assert query.shape == (len(page_encoder.query_tokens("where is paris")), page_encoder.dim)
    assert not np.array_equal(vectors[0], vectors[1])  # different pages, different vectors


def test_scores_match_transformers_reference(page_encoder: PageEncoder, pages: list[Page]) -> None:
    """Through the model's own processor and forward, scored by the processor's score_retrieval."""
    import torch

    processor, model = page_encoder.processor, page_encoder.model
    with torch.inference_mode():
        batch = processor.process_images([pages[0].image])
        docs = model(**batch).embeddings
        docs = [docs[0][batch["attention_mask"][0].bool()]]
        queries = model(**processor.process_queries(["where is paris"])).embeddings
    reference = float(processor.score_retrieval(list(queries), docs)[0, 0])
    ours = maxsim(
        page_encoder.encode_queries(["where is paris"])[0], page_encoder.encode_pages(pages[:1])
    )
    assert float(ours[0]) == pytest.approx(reference, abs=1e-4)


def test_a_second_run_encodes_no_page(
    tiny_page_encoder_path: Path, pages: list[Page], tmp_path: Path
) -> None:
    first = PageEncoder(tiny_page_encoder_path, cache=MultivectorCache(tmp_path / "cache"))
    before = first.encode_stats()
    vectors = first.encode_pages(pages + pages[:2])
    assert (first.encode_stats() - before).documents == len(pages)  # each distinct page once
    second = PageEncoder(tiny_page_encoder_path, cache=MultivectorCache(tmp_path / "cache"))
    again = second.encode_pages(pages)
    assert second.encode_stats().documents == 0
    for a, b in zip(vectors, again, strict=False):
        np.testing.assert_array_equal(a, b)


def test_encode_documents_says_to_use_pages(page_encoder: PageEncoder, pages: list[Page]) -> None:
    with pytest.raises(TypeError, match="encode_pages"):
        page_encoder.encode_documents(["text"])
    with pytest.raises(TypeError, match="sequence of pages"):
        page_encoder.encode_pages(pages[0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PIL images"):
        page_encoder.encode_pages(["a text"])  # type: ignore[list-item]


def test_patch_boxes_tile_the_page(page_encoder: PageEncoder, pages: list[Page]) -> None:
    page = pages[0]
    boxes = page_encoder.patch_boxes(page)
    (vectors,) = page_encoder.encode_pages([page])
    assert boxes.shape == (len(vectors), 4)
    width, height = page.image.size
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    cells = boxes[(boxes[:, 2] - boxes[:, 0]) < width]
    area = ((cells[:, 2] - cells[:, 0]) * (cells[:, 3] - cells[:, 1])).sum()
    assert area == width * height  # the patch cells cover the page exactly once
    np.testing.assert_array_equal(page_encoder.patch_boxes(page.image.size), boxes)


def test_add_pages_indexes_pages_by_id(page_encoder: PageEncoder, pages: list[Page]) -> None:
    index = LateIndex(page_encoder, dtype="float32")
    assert index.add_pages(pages) == [p.id for p in pages]
    hit = index.get([pages[0].id])[0]
    assert hit.text == pages[0].text and hit.metadata == pages[0].metadata
    hits = index.search("where is paris", k=5)
    assert len(hits) == 5
    (query,) = page_encoder.encode_queries(["where is paris"])
    expected = maxsim(query, page_encoder.encode_pages(pages))
    scores = {h.id: h.score for h in hits}
    for page, score in zip(pages, expected, strict=True):
        assert scores[page.id] == pytest.approx(float(score), abs=1e-5)


def test_add_pages_needs_a_page_encoder(pages: list[Page]) -> None:
    with pytest.raises(TypeError, match="PageEncoder"):
        LateIndex(FakeEncoder()).add_pages(pages)


def test_a_saved_page_index_loads_with_the_same_encoder(
    page_encoder: PageEncoder, tiny_page_encoder_path: Path, pages: list[Page], tmp_path: Path
) -> None:
    from latecore.errors import FingerprintMismatchError

    index = LateIndex(page_encoder)
    index.add_pages(pages)
    index.save(tmp_path / "index")
    loaded = LateIndex.load(tmp_path / "index", page_encoder)
    assert [h.id for h in loaded.search("where is paris", k=5)] == [
        h.id for h in index.search("where is paris", k=5)
    ]
    assert loaded.get([pages[1].id])[0].metadata == pages[1].metadata
    with pytest.raises(FingerprintMismatchError):
        LateIndex.load(tmp_path / "index", PageEncoder(tiny_page_encoder_path, pool_factor=2))
