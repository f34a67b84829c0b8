"""PageEncoder: deterministic across processes, fingerprints and keys that cover what changes
the vectors, the safety rules of text checkpoints, explanations with pixel boxes, pooling."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latecore import LateIndex, ModelLoadError, MultivectorCache, maxsim
from latecore.pages import Page, load_pdf_pages
from latecore.testing.vision import make_test_pdf, write_tiny_colqwen2_checkpoint
from latecore.vision import SUPPORTED_MODEL_TYPES, PageEncoder, explain_page

QUERY = "where is paris"


@pytest.fixture(scope="module")
def page_encoder(tiny_page_encoder_path: Path) -> PageEncoder:
    return PageEncoder(tiny_page_encoder_path)


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pdf")
    return make_test_pdf(folder / "a.pdf", ["paris is in france", None, "a city"], with_chart=True)


@pytest.fixture(scope="module")
def pages(pdf: Path) -> list[Page]:
    return load_pdf_pages(pdf, dpi=72)


def _copy(checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(checkpoint, tmp_path / "copy"))


_ENCODE_IN_SUBPROCESS = """
import sys, numpy as np
from latecore.pages import load_pdf_pages
from latecore.vision import PageEncoder
encoder = PageEncoder(sys.argv[1])
vectors = encoder.encode_pages(load_pdf_pages(sys.argv[2], dpi=72))
vectors += encoder.encode_queries(["where is paris", "a city"])
np.savez(sys.argv[3], *vectors)
print(encoder.fingerprint)
"""


@pytest.mark.slow
def test_two_processes_give_bit_identical_vectors(
    tiny_page_encoder_path: Path, page_encoder: PageEncoder, pdf: Path, tmp_path: Path
) -> None:
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _ENCODE_IN_SUBPROCESS,
                str(tiny_page_encoder_path),
                str(pdf),
                str(tmp_path / f"{i}.npz"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    fingerprints = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-2000:]
        fingerprints.append(out.strip().splitlines()[-1])
    first, second = (np.load(tmp_path / f"{i}.npz") for i in range(2))
    assert len(first.files) == 6
    for name in first.files:
        assert first[name].tobytes() == second[name].tobytes()
    assert fingerprints == [page_encoder.fingerprint] * 2
    here = page_encoder.encode_pages(load_pdf_pages(pdf, dpi=72))
    for i, array in enumerate(here):
        assert array.tobytes() == first[f"arr_{i}"].tobytes()


@pytest.mark.slow
def test_fingerprint_differs_per_model_and_pooling(
    tiny_page_encoder_path: Path, page_encoder: PageEncoder, tmp_path: Path
) -> None:
    other = PageEncoder(write_tiny_colqwen2_checkpoint(tmp_path / "seed1", seed=1))
    pooled = PageEncoder(tiny_page_encoder_path, pool_factor=2)
    smaller = PageEncoder(tiny_page_encoder_path, max_pixels=28 * 28 * 32)
    prints = {e.fingerprint for e in (page_encoder, other, pooled, smaller)}
    assert len(prints) == 4
    assert PageEncoder(tiny_page_encoder_path).fingerprint == page_encoder.fingerprint
    assert pooled.describe()["pool_factor"] == 2
    assert smaller.describe()["image_settings"]["size"]["longest_edge"] == 28 * 28 * 32


def test_key_differs_per_dpi_and_pixels(page_encoder: PageEncoder, pdf: Path) -> None:
    low, high = load_pdf_pages(pdf, dpi=36)[0], load_pdf_pages(pdf, dpi=72)[0]
    assert page_encoder.page_key(low) != page_encoder.page_key(high)
    # the same pixels said to come from another dpi are another render: another key
    relabelled = Page(low.id, low.text, low.image, {**low.metadata, "dpi": 37})
    assert page_encoder.page_key(relabelled) != page_encoder.page_key(low)
    assert page_encoder.page_key(low) == page_encoder.page_key(load_pdf_pages(pdf, dpi=36)[0])
    assert page_encoder.page_key(low.image) != page_encoder.page_key(low)  # no dpi


def test_cached_pages_are_keyed_by_pixels_not_ids(
    tiny_page_encoder_path: Path, pages: list[Page], tmp_path: Path
) -> None:
    encoder = PageEncoder(tiny_page_encoder_path, cache=MultivectorCache(tmp_path / "c"))
    encoder.encode_pages(pages)
    renamed = [Page(f"elsewhere:{i}", "", p.image, dict(p.metadata)) for i, p in enumerate(pages)]
    before = encoder.encode_stats().documents
    encoder.encode_pages(renamed)
    assert encoder.encode_stats().documents == before
    changed = pages[0].image.copy()
    changed.putpixel((5, 5), (0, 0, 0))
    encoder.encode_pages([Page("x", "", changed, dict(pages[0].metadata))])
    assert encoder.encode_stats().documents == before + 1


def test_remote_code_is_refused_unless_opted_in(
    tiny_page_encoder_path: Path, tmp_path: Path
) -> None:
    copy = _copy(tiny_page_encoder_path, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="trust_remote_code=True"):
        PageEncoder(copy)
    # opted in, it still loads through transformers' own class (the code is never needed)
    assert PageEncoder(copy, trust_remote_code=True).describe()["remote_code"] is True


def test_pickle_weights_are_refused(tiny_page_encoder_path: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    copy = _copy(tiny_page_encoder_path, tmp_path)
    torch.save(load_file(str(copy / "model.safetensors")), copy / "pytorch_model.bin")
    (copy / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="pickle"):
        PageEncoder(copy)


def test_unsupported_model_type_raises_a_clear_error(
    tiny_page_encoder_path: Path, tmp_path: Path
) -> None:
    copy = _copy(tiny_page_encoder_path, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["model_type"] = "bert"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="model_type 'bert'") as raised:
        PageEncoder(copy)
    assert all(name in str(raised.value) for name in SUPPORTED_MODEL_TYPES)
    assert "latecore.Encoder" in str(raised.value)


def test_a_bad_dtype_is_refused(tiny_page_encoder_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        PageEncoder(tiny_page_encoder_path, dtype="int8")


def _inside(box: tuple[int, int, int, int], width: int, height: int) -> bool:
    x0, y0, x1, y1 = box
    return 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_explanations_name_pixel_boxes_inside_the_page(
    page_encoder: PageEncoder, pages: list[Page]
) -> None:
    index = LateIndex(page_encoder, dtype="float32")
    index.add_pages(pages)
    for page in pages:
        explanation = explain_page(page_encoder, QUERY, page)
        assert explanation.page_id == page.id
        assert (explanation.width, explanation.height) == page.image.size
        assert len(explanation.matches) == len(page_encoder.query_tokens(QUERY))
        assert explanation.matches[2].token == "where"
        assert all(_inside(m.box, *page.image.size) for m in explanation.matches)
        total = sum(m.score for m in explanation.matches)
        assert explanation.score == pytest.approx(total, abs=1e-5)
        assert explanation.score == pytest.approx(float(index.score(QUERY, [page.id])[0]), abs=1e-5)
        ranked = explanation.boxes()
        assert [s for _, s, _ in ranked] == sorted(
            (m.score for m in explanation.matches), reverse=True
        )
    boxes = page_encoder.patch_boxes(pages[-1])
    assert all(tuple(boxes[m.vector]) == m.box for m in explanation.matches)


def test_explanation_matches_a_float16_index(
    tiny_page_encoder_path: Path, pages: list[Page], tmp_path: Path
) -> None:
    encoder = PageEncoder(tiny_page_encoder_path, cache=MultivectorCache(tmp_path / "c"))
    index = LateIndex(encoder)  # float16, as the cache stores
    index.add_pages(pages[:2])
    explanation = explain_page(encoder, QUERY, pages[1])
    assert explanation.score == pytest.approx(float(index.score(QUERY, [pages[1].id])[0]), abs=1e-5)


def test_pooled_pages_keep_union_boxes(
    tiny_page_encoder_path: Path, page_encoder: PageEncoder, pages: list[Page]
) -> None:
    pooled = PageEncoder(tiny_page_encoder_path, pool_factor=2)
    page = pages[0]
    (full,) = page_encoder.encode_pages([page])
    (vectors,) = pooled.encode_pages([page])
    assert len(vectors) == len(full) // 2
    boxes = pooled.patch_boxes(page)
    assert boxes.shape == (len(vectors), 4)
    assert all(_inside(tuple(b), *page.image.size) for b in boxes.tolist())
    with pytest.raises(ValueError, match="pass the page"):
        pooled.patch_boxes(page.image.size)
    explanation = explain_page(pooled, QUERY, page)
    (query,) = pooled.encode_queries([QUERY])
    assert explanation.score == pytest.approx(float(maxsim(query, [vectors])[0]), abs=1e-5)
    assert {m.box for m in explanation.matches} <= {tuple(b) for b in boxes.tolist()}


def test_import_latecore_stays_light() -> None:
    code = (
        "import sys, latecore, latecore.pages, latecore.vision, latecore.documents; "
        "heavy = ('torch', 'transformers', 'PIL', 'pypdfium2'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _tiny(kind: str, folder: Path) -> Path:
    from latecore.testing import vision

    return getattr(vision, f"write_tiny_{kind}_checkpoint")(folder)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "tiles"), [("colmodernvbert", 2), ("colpali", 1)])
def test_other_families_encode_with_boxes_and_reference_scores(
    kind: str, tiles: int, pages: list[Page], tmp_path: Path
) -> None:
    """ColModernVBert: its tiles cover the page once and its global image once more;
    ColPali: one square grid. Scores equal transformers' own score_retrieval."""
    import torch

    encoder = PageEncoder(_tiny(kind, tmp_path / kind))
    assert encoder.model_type == kind
    page = pages[0]
    (vectors,) = encoder.encode_pages([page])
    boxes = encoder.patch_boxes(page)
    assert boxes.shape == (len(vectors), 4)
    assert all(_inside(tuple(b), *page.image.size) for b in boxes.tolist())
    width, height = page.image.size
    cells = boxes[(boxes[:, 2] - boxes[:, 0]) < width]
    area = ((cells[:, 2] - cells[:, 0]) * (cells[:, 3] - cells[:, 1])).sum()
    assert area == tiles * width * height
    processor, model = encoder.processor, encoder.model
    with torch.inference_mode():
        batch = processor.process_images([page.image])
        docs = [model(**batch).embeddings[0][batch["attention_mask"][0].bool()]]
        queries = list(model(**processor.process_queries([QUERY])).embeddings)
    reference = float(processor.score_retrieval(queries, docs)[0, 0])
    explanation = explain_page(encoder, QUERY, page)
    assert explanation.score == pytest.approx(reference, abs=1e-4)
    assert all(_inside(m.box, width, height) for m in explanation.matches)


def test_missing_weights_are_refused(tiny_page_encoder_path: Path, tmp_path: Path) -> None:
    """A weight drawn at random would differ from process to process: never loaded."""
    from safetensors.torch import load_file, save_file

    copy = _copy(tiny_page_encoder_path, tmp_path)
    weights = load_file(str(copy / "model.safetensors"))
    dropped = [name for name in weights if name.startswith("embedding_proj_layer")]
    assert dropped
    save_file(
        {k: v for k, v in weights.items() if k not in dropped}, str(copy / "model.safetensors")
    )
    with pytest.raises(ModelLoadError, match="at random"):
        PageEncoder(copy)


class _TouchOnUnpickle:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickle_weights_beside_safetensors_are_never_unpickled(
    tiny_page_encoder_path: Path, page_encoder: PageEncoder, pages: list[Page], tmp_path: Path
) -> None:
    import pickle

    copy = _copy(tiny_page_encoder_path, tmp_path)
    marker = tmp_path / "unpickled"
    (copy / "pytorch_model.bin").write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    encoder = PageEncoder(copy)
    assert not marker.exists()
    assert encoder.encode_pages(pages[:1])[0].tobytes() == (
        page_encoder.encode_pages(pages[:1])[0].tobytes()
    )


def test_a_query_gets_the_same_vectors_whatever_it_is_batched_with(
    page_encoder: PageEncoder,
) -> None:
    queries = ["paris", "where is the capital of france and its river"]
    together = page_encoder.encode_queries(queries)
    for query, vectors in zip(queries, together, strict=True):
        assert page_encoder.encode_queries([query])[0].tobytes() == vectors.tobytes()
