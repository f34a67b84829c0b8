"""The ColVision model families :class:`~latecore.vision.PageEncoder` loads, by ``model_type``:
ColQwen2, ColPali and ColModernVBert.

Each family names transformers' own retrieval model and processor classes and
its *geometry*: which page region each vector of a page stands for. Vectors of
image tokens map to the grid cell of their patch, scaled to the page's pixels;
the prompt's text tokens stand for the whole page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelLoadError

__all__ = ["FAMILIES", "Family", "family_for", "grid_boxes"]

Geometry = Callable[[Any, dict[str, Any], int, np.ndarray, tuple[int, int]], np.ndarray]
"""``(processor, batch, row, kept input ids, (width, height)) -> (n_kept, 4)`` int boxes."""


def grid_boxes(rows: int, cols: int, width: int, height: int) -> np.ndarray:
    """Pixel boxes ``(x0, y0, x1, y1)`` of a ``rows x cols`` grid over a page, row by row.

    Cells tile the page exactly: the last column ends at ``width``, the last row
    at ``height``.

    Examples
    --------
    >>> grid_boxes(2, 3, 90, 40).tolist()  # doctest: +NORMALIZE_WHITESPACE
    [[0, 0, 30, 20], [30, 0, 60, 20], [60, 0, 90, 20],
     [0, 20, 30, 40], [30, 20, 60, 40], [60, 20, 90, 40]]
    """
    xs = np.arange(cols + 1) * width // cols
    ys = np.arange(rows + 1) * height // rows
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([xs[c], ys[r], xs[c + 1], ys[r + 1]], axis=1).astype(np.int64)


def _place(ids: np.ndarray, image_token_id: int, cells: np.ndarray, size: tuple[int, int]) -> Any:
    """Boxes for ``ids``: the ``i``-th image token gets ``cells[i]``, others the whole page."""
    width, height = size
    boxes = np.tile(np.array([0, 0, width, height], dtype=np.int64), (len(ids), 1))
    where = np.flatnonzero(ids == image_token_id)
    if len(where) != len(cells):
        raise ValueError(
            f"the page has {len(where)} image tokens but its patch grid has {len(cells)} cells"
        )
    boxes[where] = cells
    return boxes


def _qwen2_geometry(
    processor: Any, batch: dict[str, Any], row: int, ids: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    _, grid_h, grid_w = (int(v) for v in batch["image_grid_thw"][row])
    merge = int(processor.image_processor.merge_size)
    image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    cells = grid_boxes(grid_h // merge, grid_w // merge, *size)
    return _place(ids, image_token_id, cells, size)


def _square_geometry(
    processor: Any, batch: dict[str, Any], row: int, ids: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """One square patch grid over the whole (resized) page: ColPali's PaliGemma images."""
    image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    count = int(np.count_nonzero(ids == image_token_id))
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"{count} image tokens do not form a square patch grid")
    return _place(ids, image_token_id, grid_boxes(side, side, *size), size)


def _tiles_geometry(
    processor: Any, batch: dict[str, Any], row: int, ids: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """ColModernVBert's split images: a ``rows x cols`` grid of tiles (each its own square
    patch grid, tagged ``<row_r_col_c>`` in the prompt), then the whole page downscaled."""
    side = math.isqrt(int(processor.image_seq_len))
    tags = {tag: divmod(k, 6) for k, tag in enumerate(processor.row_col_ids)}
    present = [tags[t] for t in ids.tolist() if t in tags]
    rows = 1 + max((r for r, _ in present), default=-1)
    cols = 1 + max((c for _, c in present), default=-1)
    width, height = size
    cells = []
    for r in range(rows):
        for c in range(cols):
            x0, x1 = c * width // cols, (c + 1) * width // cols
            y0, y1 = r * height // rows, (r + 1) * height // rows
            cells.append(grid_boxes(side, side, x1 - x0, y1 - y0) + np.array([x0, y0, x0, y0]))
    cells.append(grid_boxes(side, side, width, height))  # the global image
    return _place(ids, int(processor.image_token_id), np.concatenate(cells), size)


@dataclass(frozen=True)
class Family:
    """One ``model_type``: transformers' model and processor class names, and its geometry."""

    model_type: str
    model_class: str
    processor_class: str
    geometry: Geometry
    resizable: bool  # whether min_pixels / max_pixels apply to its image processor


FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family("colqwen2", "ColQwen2ForRetrieval", "ColQwen2Processor", _qwen2_geometry, True),
        Family("colpali", "ColPaliForRetrieval", "ColPaliProcessor", _square_geometry, False),
        Family(
            "colmodernvbert",
            "ColModernVBertForRetrieval",
            "ColModernVBertProcessor",
            _tiles_geometry,
            False,
        ),
    )
}
"""The supported checkpoint ``model_type`` values."""


def family_for(model_type: object, source: str) -> Family:
    """The family of a checkpoint's ``model_type``, or a :class:`ModelLoadError` saying which
    are supported.

    Examples
    --------
    >>> family_for("colqwen2", "ckpt").model_class
    'ColQwen2ForRetrieval'
    >>> family_for("bert", "ckpt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    latecore.errors.ModelLoadError: ckpt has model_type 'bert', which PageEncoder does not ...
    """
    family = FAMILIES.get(str(model_type))
    if family is None:
        raise ModelLoadError(
            f"{source} has model_type {model_type!r}, which PageEncoder does not load; it "
            f"loads ColVision retrieval checkpoints with model_type {sorted(FAMILIES)}. "
            "For a text ColBERT checkpoint use latecore.Encoder."
        )
    return family
