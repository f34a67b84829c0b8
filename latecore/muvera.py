"""MUVERA: one fixed-size vector per multivector, whose dot products track MaxSim.

MUVERA (Dhulipala et al., 2024, arXiv:2405.19504) turns a set of token vectors
into a *fixed-dimensional encoding* (FDE) such that the dot product of a
query's FDE with a document's FDE approximates their MaxSim (Chamfer)
similarity. An ordinary single-vector index (HNSW) over document FDEs can then
propose candidates for MaxSim re-scoring.

One *repetition* of the encoding:

1. SimHash partitioning: ``k_sim`` Gaussian hyperplanes split the space into
   ``2**k_sim`` buckets; a token's bucket is the pattern of signs of its dot
   products with them.
2. Each token is projected to ``dim_proj`` dimensions by a random ±1 matrix
   (scaled by ``1 / sqrt(dim_proj)``).
3. A query's bucket holds the *sum* of its tokens' projections; a document's
   bucket holds their *mean*. A document bucket that no token falls in takes
   the projection of the document token whose bucket is nearest in Hamming
   distance (ties: the earlier token), so every query token meets some
   document token, as MaxSim's max does.

``r_reps`` independent repetitions are concatenated: the FDE has
``r_reps * 2**k_sim * dim_proj`` dimensions (5,120 with the defaults). The
random hyperplanes and projections come from ``numpy.random.default_rng(seed)``,
so the same ``seed`` and token dimension give the same encoding in any process.

Encoding works on token vectors packed end to end in one matrix with document
boundaries (``offsets``), a block of documents at a time: two GEMMs per block
and bucket sums by ``numpy.bincount``, never a Python loop over tokens.

Examples
--------
>>> import numpy as np
>>> muvera = Muvera(dim=8, k_sim=2, dim_proj=4, r_reps=3, seed=7)
>>> muvera.fde_dim
48
>>> rng = np.random.default_rng(0)
>>> docs = [rng.standard_normal((5, 8)), rng.standard_normal((9, 8))]
>>> muvera.encode_documents(docs).shape
(2, 48)
>>> query = muvera.encode_queries([docs[1][:3]])
>>> bool((query @ muvera.encode_documents(docs).T).argmax() == 1)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .validation import check_count, check_positive

__all__ = ["MUVERA_DEFAULTS", "Muvera"]

MUVERA_DEFAULTS: Mapping[str, int] = {"k_sim": 5, "dim_proj": 16, "r_reps": 10, "seed": 42}
"""Default settings: 10 repetitions of 32 buckets x 16 dimensions = 5,120 dimensions."""

_MAX_K_SIM = 12
_BLOCK_TOKENS = 16384


class Muvera:
    """Fixed-dimensional encodings (FDEs) of token-vector sets for one token dimension.

    Parameters
    ----------
    dim
        Dimension of the token vectors.
    k_sim
        SimHash hyperplanes per repetition: ``2**k_sim`` buckets (1 to 12).
    dim_proj
        Dimensions each bucket is projected to.
    r_reps
        Independent repetitions, concatenated.
    seed
        Seed of the random hyperplanes and projections.

    Raises
    ------
    ValueError
        If a setting is not a positive integer (``seed``: non-negative), or
        ``k_sim`` exceeds 12.

    Examples
    --------
    >>> Muvera(dim=128).fde_dim
    5120
    >>> Muvera(dim=128).options
    {'k_sim': 5, 'dim_proj': 16, 'r_reps': 10, 'seed': 42}
    >>> Muvera(dim=128, k_sim=13)
    Traceback (most recent call last):
    ...
    ValueError: k_sim must be at most 12 (4,096 buckets), got 13
    """

    def __init__(
        self,
        dim: int,
        *,
        k_sim: int = MUVERA_DEFAULTS["k_sim"],
        dim_proj: int = MUVERA_DEFAULTS["dim_proj"],
        r_reps: int = MUVERA_DEFAULTS["r_reps"],
        seed: int = MUVERA_DEFAULTS["seed"],
    ) -> None:
        self.dim = check_positive(dim, "dim")
        self.k_sim = check_positive(k_sim, "k_sim")
        if self.k_sim > _MAX_K_SIM:
            raise ValueError(
                f"k_sim must be at most {_MAX_K_SIM} ({2**_MAX_K_SIM:,} buckets), got {k_sim!r}"
            )
        self.dim_proj = check_positive(dim_proj, "dim_proj")
        self.r_reps = check_positive(r_reps, "r_reps")
        self.seed = check_count(seed, "seed")
        rng = np.random.default_rng(self.seed)
        hyperplanes = rng.standard_normal((self.dim, self.r_reps * self.k_sim))
        signs = rng.integers(0, 2, size=(self.dim, self.r_reps * self.dim_proj)) * 2 - 1
        # One GEMM per block gives both the SimHash sides and the projections.
        self._weights = np.concatenate(
            [hyperplanes, signs / np.sqrt(self.dim_proj)], axis=1
        ).astype(np.float32)
        buckets = np.arange(self.n_buckets)
        self._hamming = _popcount(buckets[:, None] ^ buckets[None, :])

    @property
    def n_buckets(self) -> int:
        """Buckets per repetition, ``2**k_sim``."""
        return 1 << self.k_sim

    @property
    def fde_dim(self) -> int:
        """Dimension of an encoding: ``r_reps * 2**k_sim * dim_proj``."""
        return self.r_reps * self.n_buckets * self.dim_proj

    @property
    def options(self) -> dict[str, int]:
        """The settings that, with :attr:`dim`, determine the encoding."""
        return {
            "k_sim": self.k_sim,
            "dim_proj": self.dim_proj,
            "r_reps": self.r_reps,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value}" for key, value in self.options.items())
        return f"Muvera(dim={self.dim}, {settings}; fde_dim={self.fde_dim})"

    def encode_documents(self, vectors: Sequence[np.ndarray]) -> np.ndarray:
        """Document FDEs: bucket means, empty buckets filled from the nearest token.

        Parameters
        ----------
        vectors
            One ``(n_tokens, dim)`` array per document, ``n_tokens >= 1``.

        Returns
        -------
        numpy.ndarray
            float32, shape ``(n_documents, fde_dim)``.

        Examples
        --------
        >>> muvera = Muvera(dim=4, k_sim=1, dim_proj=2, r_reps=1)
        >>> fde = muvera.encode_documents([np.eye(4)[:1]])
        >>> # One token: it fills both buckets (one as its own, one as the nearest token).
        >>> bool(np.allclose(fde[0, :2], fde[0, 2:]))
        True
        """
        matrix, offsets = _pack(vectors, self.dim, allow_empty=False)
        return self.encode_packed(matrix, offsets, is_query=False)

    def encode_queries(self, vectors: Sequence[np.ndarray]) -> np.ndarray:
        """Query FDEs: bucket sums (empty buckets stay zero).

        Parameters
        ----------
        vectors
            One ``(n_tokens, dim)`` array per query (a query without tokens
            encodes to zeros).

        Returns
        -------
        numpy.ndarray
            float32, shape ``(n_queries, fde_dim)``.

        Examples
        --------
        >>> muvera = Muvera(dim=4, k_sim=1, dim_proj=2, r_reps=1)
        >>> int(np.count_nonzero(muvera.encode_queries([np.eye(4)[:1]])))
        2
        """
        matrix, offsets = _pack(vectors, self.dim, allow_empty=True)
        return self.encode_packed(matrix, offsets, is_query=True)

    def encode_packed(
        self,
        matrix: np.ndarray,
        offsets: np.ndarray,
        *,
        is_query: bool,
        block_tokens: int = _BLOCK_TOKENS,
    ) -> np.ndarray:
        """FDEs of token vectors packed end to end (the fast path for many documents).

        Parameters
        ----------
        matrix
            Shape ``(n_tokens, dim)``, any float dtype (computed in float32).
        offsets
            ``n + 1`` boundaries: text ``i`` owns rows ``offsets[i]:offsets[i + 1]``.
        is_query
            Sums per bucket (queries) or means with empty buckets filled (documents).
        block_tokens
            About how many tokens are encoded per block (bounds memory).

        Returns
        -------
        numpy.ndarray
            float32, shape ``(n, fde_dim)``.

        Raises
        ------
        ValueError
            If the shapes disagree, or a document has no tokens.

        Examples
        --------
        >>> muvera = Muvera(dim=4, k_sim=2, dim_proj=2, r_reps=2)
        >>> docs = [np.ones((2, 4)), -np.ones((3, 4))]
        >>> packed = np.concatenate(docs)
        >>> fdes = muvera.encode_packed(packed, np.array([0, 2, 5]), is_query=False)
        >>> bool(np.allclose(fdes, muvera.encode_documents(docs)))
        True
        """
        matrix = np.asarray(matrix)
        offsets = np.asarray(offsets, dtype=np.int64)
        _check_packed(matrix, offsets, self.dim, allow_empty=is_query)
        n = len(offsets) - 1
        out = np.zeros((n, self.r_reps, self.n_buckets, self.dim_proj), dtype=np.float32)
        for first, last in _blocks(offsets, block_tokens):
            start, end = int(offsets[first]), int(offsets[last])
            lengths = np.diff(offsets[first : last + 1])
            tokens = np.asarray(matrix[start:end], dtype=np.float32)
            out[first:last] = self._encode_block(tokens, lengths, is_query)
        return out.reshape(n, self.fde_dim)

    def _encode_block(self, tokens: np.ndarray, lengths: np.ndarray, is_query: bool) -> np.ndarray:
        """FDEs of one block, shape ``(n_docs, r_reps, n_buckets, dim_proj)``."""
        n_docs, n_buckets, reps = len(lengths), self.n_buckets, self.r_reps
        product = tokens @ self._weights
        sides = product[:, : reps * self.k_sim].reshape(-1, reps, self.k_sim) > 0
        codes = np.zeros(sides.shape[:2], dtype=np.int64)  # (n_tokens, reps): sign bits
        for bit in range(self.k_sim):
            codes <<= 1
            codes |= sides[..., bit]
        projected = product[:, reps * self.k_sim :].reshape(-1, self.dim_proj)
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        # One slot per (document, repetition, bucket); row t * reps + r of `projected`
        # (token t, repetition r) goes to slot `slots[t * reps + r]`.
        slots = ((doc[:, None] * reps + np.arange(reps)) * n_buckets + codes).ravel()
        n_slots = n_docs * reps * n_buckets
        # Scatter-add every projected value into its (slot, column) cell: one bincount.
        cells = (slots[:, None] * self.dim_proj + np.arange(self.dim_proj)).ravel()
        fde: np.ndarray = np.bincount(
            cells, weights=projected.ravel(), minlength=n_slots * self.dim_proj
        ).reshape(n_slots, self.dim_proj)
        if not is_query:
            counts = np.bincount(slots, minlength=n_slots)
            fde /= np.maximum(counts, 1)[:, None]
            empty = np.flatnonzero(counts == 0)
            if len(empty):
                fde[empty] = self._nearest_fill(empty, slots, projected, n_slots)
        return fde.astype(np.float32).reshape(n_docs, reps, n_buckets, self.dim_proj)

    def _nearest_fill(
        self, empty: np.ndarray, slots: np.ndarray, projected: np.ndarray, n_slots: int
    ) -> np.ndarray:
        """Values of empty slots: the first token of the nearest occupied bucket (Hamming)."""
        n_rows = len(slots)
        # First row of `projected` in each slot; n_rows marks an empty slot.
        first_row = np.full(n_slots, n_rows, dtype=np.int64)
        np.minimum.at(first_row, slots, np.arange(n_rows, dtype=np.int64))
        first = first_row.reshape(-1, self.n_buckets)  # (document x repetition, bucket)
        group, bucket = np.divmod(empty, self.n_buckets)
        candidates = first[group]
        # Nearest occupied bucket by Hamming distance, then the earliest token: one key.
        key = self._hamming[bucket] * (n_rows + 1) + candidates
        key[candidates == n_rows] = np.iinfo(np.int64).max
        nearest = key.argmin(axis=1)
        return projected[candidates[np.arange(len(empty)), nearest]]


def _popcount(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each (non-negative) integer."""
    counts = np.zeros(values.shape, dtype=np.int64)
    remaining = values.copy()
    while remaining.any():
        counts += remaining & 1
        remaining >>= 1
    return counts


def _blocks(offsets: np.ndarray, block_tokens: int) -> list[tuple[int, int]]:
    """Document ranges ``[first, last)`` holding about ``block_tokens`` tokens each."""
    ranges: list[tuple[int, int]] = []
    first, n = 0, len(offsets) - 1
    while first < n:
        last = int(np.searchsorted(offsets, offsets[first] + block_tokens, side="right")) - 1
        last = min(max(last, first + 1), n)
        ranges.append((first, last))
        first = last
    return ranges


def _pack(
    vectors: Sequence[np.ndarray], dim: int, *, allow_empty: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Token arrays packed end to end (float32) with their ``len + 1`` offsets."""
    arrays = [np.asarray(v) for v in vectors]
    for i, array in enumerate(arrays):
        if array.ndim != 2 or array.shape[1] != dim:
            raise ValueError(f"text {i} must be a (n_tokens, {dim}) array, got shape {array.shape}")
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([a.shape[0] for a in arrays], out=offsets[1:])
    matrix = (
        np.concatenate(arrays).astype(np.float32, copy=False)
        if arrays
        else np.zeros((0, dim), dtype=np.float32)
    )
    _check_packed(matrix, offsets, dim, allow_empty=allow_empty)
    return matrix, offsets


def _check_packed(matrix: np.ndarray, offsets: np.ndarray, dim: int, *, allow_empty: bool) -> None:
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"token vectors must have shape (n_tokens, {dim}), got {matrix.shape}")
    if offsets.ndim != 1 or not len(offsets) or offsets[0] != 0 or offsets[-1] != len(matrix):
        raise ValueError("offsets must start at 0 and end at the number of packed tokens")
    lengths = np.diff(offsets)
    if np.any(lengths < 0):
        raise ValueError("offsets must not decrease")
    if not allow_empty and np.any(lengths == 0):
        first = int(np.flatnonzero(lengths == 0)[0])
        raise ValueError(f"document {first} has no token vectors; it has no encoding")
