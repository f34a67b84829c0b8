"""Exact, ragged MaxSim scoring.

MaxSim(q, d) = sum over query tokens of the largest dot product with any token of
d. Documents are never zero-padded: their tokens are packed end to end into one
matrix, scored with one float32 GEMM per block of about 4k tokens (blocks end on
document boundaries), and reduced with a segmented max (``np.maximum.reduceat``).
Half-precision storage is upcast block by block into a reused float32 buffer:
half-precision GEMM on a CPU is far slower than float32. Upcast and GEMM both
run in torch so that only one thread pool is active.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

__all__ = ["PackedDocuments", "maxsim", "maxsim_batch", "top_k"]

BLOCK_TOKENS = 4096
"""Target number of document tokens scored per GEMM block."""

GEMM_ROWS = 16
"""The stacked query rows of a GEMM are zero-padded to a multiple of this. CPU GEMMs
take another kernel, with other rounding, for a few rows (1-11 here) than for many,
so without padding a query's scores would change in the last bit when it is scored
together with others (concurrent searches are: :mod:`latecore.batching`)."""


class PackedDocuments:
    """Documents' token vectors packed end to end, with their boundaries.

    Parameters
    ----------
    documents
        One ``(n_tokens_i, dim)`` array per document, every ``n_tokens_i >= 1``.
    dtype
        Storage dtype of the packed matrix (``float16`` halves the memory; scoring
        always computes in float32).

    Examples
    --------
    >>> packed = PackedDocuments([np.ones((2, 4)), np.ones((3, 4))])
    >>> len(packed), packed.n_tokens, packed.dim
    (2, 5, 4)
    >>> packed.offsets.tolist()
    [0, 2, 5]
    """

    def __init__(
        self, documents: Sequence[np.ndarray], dtype: np.dtype[Any] | type = np.float32
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.scales: NDArray[np.float32] | None = None
        arrays = [np.asarray(d) for d in documents]
        dims = {a.shape[1] for a in arrays if a.ndim == 2}
        for i, a in enumerate(arrays):
            if a.ndim != 2:
                raise ValueError(f"document {i} must be a 2-D (n_tokens, dim) array, got {a.shape}")
            if a.shape[0] == 0:
                raise ValueError(f"document {i} has no token vectors; MaxSim is undefined for it")
        if len(dims) > 1:
            raise ValueError(f"documents have different vector dimensions: {sorted(dims)}")
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        self.offsets: NDArray[np.int64] = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.dim = dims.pop() if dims else 0
        self.matrix: NDArray[Any] = np.empty((int(self.offsets[-1]), self.dim), dtype=self.dtype)
        for a, start, end in zip(arrays, self.offsets[:-1], self.offsets[1:], strict=True):
            self.matrix[start:end] = a

    @classmethod
    def from_parts(
        cls, matrix: np.ndarray, offsets: np.ndarray, scales: np.ndarray | None = None
    ) -> PackedDocuments:
        """Wrap an already packed matrix and its ``len + 1`` boundary offsets.

        ``scales`` (float32, one per row) makes ``matrix`` int8 codes of the vectors
        ``codes * scale`` (:mod:`latecore.quantize`): each block is scaled as it is
        upcast, so no float copy of the whole matrix is made. ``matrix`` may be a
        memory map: a block is read when it is scored.

        Examples
        --------
        >>> codes = np.array([[127, 0], [0, 127]], dtype=np.int8)
        >>> packed = PackedDocuments.from_parts(codes, np.array([0, 2]), np.array([0.5, 1.0]))
        >>> packed.score([np.array([[1.0, 1.0]], dtype=np.float32)]).round(3).tolist()
        [[127.0]]
        """
        if scales is not None and (matrix.dtype != np.int8 or len(scales) != matrix.shape[0]):
            raise ValueError("scales go with an int8 matrix, one scale per row")
        packed = cls.__new__(cls)
        packed.scales = None if scales is None else np.asarray(scales, dtype=np.float32)
        packed.matrix = matrix
        packed.dtype = matrix.dtype
        packed.offsets = np.asarray(offsets, dtype=np.int64)
        packed.dim = matrix.shape[1]
        if packed.offsets[0] != 0 or packed.offsets[-1] != matrix.shape[0]:
            raise ValueError("offsets must start at 0 and end at the number of packed tokens")
        if np.any(np.diff(packed.offsets) <= 0):
            raise ValueError("every packed document needs at least one token vector")
        return packed

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        """Total number of packed token vectors."""
        return int(self.offsets[-1])

    def document(self, i: int) -> np.ndarray:
        """The token vectors of document ``i`` (a view)."""
        return self.matrix[self.offsets[i] : self.offsets[i + 1]]

    def document_float32(self, i: int, rows: np.ndarray | None = None) -> np.ndarray:
        """The token vectors of document ``i`` as float32 (int8: codes times scales);
        ``rows``: its stored rows read by the caller (default: read from :attr:`matrix`)."""
        rows = self.document(i) if rows is None else rows
        if self.scales is None:
            return np.asarray(rows, dtype=np.float32)
        scales = self.scales[self.offsets[i] : self.offsets[i + 1]]
        return rows.astype(np.float32) * scales[:, None]

    def blocks(self, block_tokens: int = BLOCK_TOKENS) -> list[tuple[int, int]]:
        """Document ranges ``[first, last)`` whose tokens add up to about ``block_tokens``."""
        ranges: list[tuple[int, int]] = []
        first = 0
        n = len(self)
        while first < n:
            limit = self.offsets[first] + block_tokens
            last = int(np.searchsorted(self.offsets, limit, side="right")) - 1
            last = min(max(last, first + 1), n)
            ranges.append((first, last))
            first = last
        return ranges

    def score(self, queries: Sequence[np.ndarray], block_tokens: int = BLOCK_TOKENS) -> np.ndarray:
        """MaxSim of every query against every packed document.

        Returns
        -------
        numpy.ndarray
            float32, shape ``(n_queries, n_documents)``.
        """
        query_arrays = [_as_float32_2d(q, "query") for q in queries]
        for q in query_arrays:
            if q.shape[0] and self.dim and q.shape[1] != self.dim:
                raise ValueError(
                    f"query vectors have dimension {q.shape[1]}, documents have {self.dim}"
                )
        scores = np.zeros((len(query_arrays), len(self)), dtype=np.float32)
        # A query without tokens scores 0 (an empty sum); only the others are computed.
        scored = [i for i, q in enumerate(query_arrays) if q.shape[0]]
        if not scored or len(self) == 0:
            return scores
        stacked = np.concatenate([query_arrays[i] for i in scored], axis=0)
        q_starts = np.zeros(len(scored), dtype=np.int64)
        np.cumsum([query_arrays[i].shape[0] for i in scored[:-1]], out=q_starts[1:])
        n_rows = stacked.shape[0]
        padding = -n_rows % GEMM_ROWS
        if padding:
            stacked = np.concatenate([stacked, np.zeros((padding, self.dim), np.float32)])
        blocks = self.blocks(block_tokens)
        widest = max(int(self.offsets[b] - self.offsets[a]) for a, b in blocks)
        # GEMM and upcast both run in torch: one thread pool. Mixing torch's OpenMP
        # pool with OpenBLAS's oversubscribed two cores and made each block far slower.
        import torch

        query_t = torch.from_numpy(stacked)
        upcast = torch.empty((widest, self.dim), dtype=torch.float32)
        products = np.empty(stacked.shape[0] * widest, dtype=np.float32)
        for first, last in blocks:
            start, end = int(self.offsets[first]), int(self.offsets[last])
            width = end - start
            block = torch.from_numpy(self.matrix[start:end])
            if block.dtype != torch.float32:
                block = upcast[:width].copy_(block)
            if self.scales is not None:
                block.mul_(torch.from_numpy(self.scales[start:end]).unsqueeze(1))
            out = products[: stacked.shape[0] * width].reshape(-1, width)
            torch.mm(query_t, block.T, out=torch.from_numpy(out))
            maxima = np.maximum.reduceat(out[:n_rows], self.offsets[first:last] - start, axis=1)
            scores[scored, first:last] = np.add.reduceat(maxima, q_starts, axis=0)
        return scores


def _as_float32_2d(array: Any, what: str) -> np.ndarray:
    result = np.asarray(array, dtype=np.float32)
    if result.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (n_tokens, dim) array, got shape {result.shape}")
    return result


def _is_torch(x: Any) -> bool:
    # torch is imported lazily: only a caller that already has tensors has imported it
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(x, torch_module.Tensor)


def _maxsim_torch(queries: Sequence[torch.Tensor], documents: Sequence[Any]) -> torch.Tensor:
    import torch

    device = queries[0].device
    docs = [torch.as_tensor(d, device=device) for d in documents]
    for i, d in enumerate(docs):
        if d.ndim != 2 or d.shape[0] == 0:
            raise ValueError(f"document {i} must be a non-empty 2-D (n_tokens, dim) tensor")
    lengths = torch.tensor([d.shape[0] for d in docs], device=device)
    padded = torch.nn.utils.rnn.pad_sequence(docs, batch_first=True).to(torch.float32)
    valid = torch.arange(padded.shape[1], device=device)[None, :] < lengths[:, None]
    rows = []
    for q in queries:
        sims = torch.einsum("qh,dth->dqt", q.to(device=device, dtype=torch.float32), padded)
        sims = sims.masked_fill(~valid[:, None, :], float("-inf"))
        rows.append(sims.max(dim=2).values.sum(dim=1))
    return torch.stack(rows)


def maxsim_batch(queries: Sequence[Any], documents: Sequence[Any]) -> Any:
    """MaxSim of each query against each document.

    Parameters
    ----------
    queries
        One ``(n_query_tokens, dim)`` array per query.
    documents
        One ``(n_tokens_i, dim)`` array per document, any lengths, float16 or float32.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        float32 scores, shape ``(n_queries, n_documents)``. A torch tensor on the
        queries' device when the queries are torch tensors (the CUDA path);
        padded positions are masked, so they never win a max.

    Examples
    --------
    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> d1 = np.array([[1.0, 0.0]], dtype=np.float32)
    >>> d2 = np.array([[0.6, 0.8], [-1.0, 0.0], [0.0, -1.0]], dtype=np.float32)
    >>> [[round(float(s), 3) for s in row] for row in maxsim_batch([q], [d1, d2])]
    [[1.0, 1.4]]
    """
    if queries and _is_torch(queries[0]):
        import torch

        if not documents:
            return torch.zeros((len(queries), 0), device=queries[0].device)
        return _maxsim_torch(queries, documents)
    docs = [d.detach().cpu().numpy() if _is_torch(d) else d for d in documents]
    storage = np.float16 if docs and all(np.asarray(d).dtype == np.float16 for d in docs) else None
    return PackedDocuments(docs, dtype=storage or np.float32).score(queries)


def maxsim(query: Any, documents: Sequence[Any]) -> Any:
    """MaxSim of one query against each document.

    Examples
    --------
    >>> q = np.array([[1.0, 0.0]], dtype=np.float32)
    >>> d = np.array([[0.5, 0.5], [0.9, 0.1]], dtype=np.float32)
    >>> [round(float(s), 3) for s in maxsim(q, [d])]
    [0.9]
    """
    return maxsim_batch([query], documents)[0]


def top_k(scores: np.ndarray, k: int | None) -> np.ndarray:
    """Indices of the ``k`` highest scores, descending; ties keep input order.

    Examples
    --------
    >>> top_k(np.array([0.5, 0.9, 0.5, 0.1]), 3).tolist()
    [1, 0, 2]
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    return order if k is None else order[: max(k, 0)]
