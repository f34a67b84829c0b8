"""int8 token vectors: one signed byte per dimension and one float32 scale per vector.

A vector ``v`` is stored as ``codes = round(v / scale)`` with ``scale = max|v| / 127``
(its largest component maps to ±127), and read back as ``codes * scale``. With
one scale per token vector, each vector uses its whole int8 range: 1 byte per
dimension plus 4 bytes per vector (100 bytes per token at dim 96, against 192
for float16). A single scale per dimension (shared by every vector) ranked the
same within a few thousandths in ``benchmarks/eval_pooling.py``
(``docs/benchmarks.md#token-pooling``) but depends on the whole corpus, so an add
could need every vector re-quantized: the per-vector scale needs nothing else.
Scoring multiplies each int8 block by its scales inside the GEMM loop
(:class:`~latecore.maxsim.PackedDocuments`): no float copy of the whole corpus is
ever made.

Examples
--------
>>> import numpy as np
>>> v = np.array([[0.6, -0.8, 0.0]], dtype=np.float32)
>>> codes, scales = quantize_int8(v)
>>> codes.tolist(), round(float(scales[0]) * 127, 6)
([[95, -127, 0]], 0.8)
>>> bool(np.abs(dequantize_int8(codes, scales) - v).max() < 0.004)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_stored", "dequantize_int8", "quantize_int8"]


def quantize_int8(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, scales)`` of ``(n, dim)`` vectors: int8 codes and one float32 scale per row.

    A zero row gets scale 0 and zero codes.

    Examples
    --------
    >>> codes, scales = quantize_int8(np.zeros((1, 2), dtype=np.float32))
    >>> codes.tolist(), scales.tolist()
    ([[0, 0]], [0.0])
    """
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (n, dim) array, got shape {array.shape}")
    scales = (
        (np.abs(array).max(axis=1) / np.float32(127)).astype(np.float32)
        if array.size
        else (np.zeros(array.shape[0], dtype=np.float32))
    )
    safe = np.where(scales > 0, scales, np.float32(1))
    codes = np.clip(np.rint(array / safe[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def dequantize_int8(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """float32 ``codes * scales`` (one scale per row).

    Examples
    --------
    >>> dequantize_int8(np.array([[127, -1]], np.int8), np.array([0.5], np.float32)).tolist()
    [[63.5, -0.5]]
    """
    return np.asarray(codes, dtype=np.float32) * np.asarray(scales, dtype=np.float32)[:, None]


def as_stored(vectors: Any, dtype: str | np.dtype[Any]) -> np.ndarray:
    """float32 ``vectors`` as a store or cache of ``dtype`` gives them back.

    Examples
    --------
    >>> v = np.array([[0.3, 0.7]], dtype=np.float32)
    >>> as_stored(v, "float32") is v, as_stored(v, "float16").dtype.name
    (True, 'float32')
    >>> float(np.abs(as_stored(v, "int8") - v).max()) < 0.003
    True
    """
    array = np.asarray(vectors, dtype=np.float32)
    kind = np.dtype(dtype)
    if kind == np.int8:
        return dequantize_int8(*quantize_int8(array))
    return array if kind == np.float32 else array.astype(kind).astype(np.float32)
