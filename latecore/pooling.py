"""Token pooling: fewer vectors per document, by hierarchical clustering.

Token pooling (Clavié et al., arXiv 2409.14683) clusters a document's token
vectors with Ward's hierarchical clustering on cosine distance and keeps each
cluster's mean: a pool factor ``k`` keeps about ``1/k`` of the vectors. The
first ``protected`` vectors (the ``[CLS]`` vector) are kept as they are. This
is what pylate's ``ColBERT.pool_embeddings_hierarchical`` computes (same
distances, same linkage, same cluster labels, same means: tests compare the two
to 1e-6), in numpy and scipy, on the float32 vectors the model returned; one
difference: distances are clipped at 0, so a document repeating a token (where
rounding makes ``1 - cos`` slightly negative and pylate's call fails) pools too.
Queries are never pooled. Quality and vector counts:
``docs/benchmarks.md#token-pooling``.

Pooling is deterministic: the same vectors give the same pooled vectors in
every process (no random state; scipy's linkage is deterministic).

Examples
--------
>>> import numpy as np
>>> x, y = [1.0, 0.0], [0.0, 1.0]
>>> vectors = np.array([y, x, y, x, y], dtype=np.float32)
>>> pooled, groups = pool_vectors(vectors, 2)
>>> pooled.tolist(), [g.tolist() for g in groups]
([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], [[0], [1, 3], [2, 4]])
"""

from __future__ import annotations

import numpy as np

from .tokens import TokenizedText
from .validation import check_positive

__all__ = ["check_pool_factor", "pool_tokenized", "pool_vectors"]


def check_pool_factor(value: object) -> int:
    """A pool factor: a positive integer (``1``: no pooling).

    Examples
    --------
    >>> check_pool_factor(2)
    2
    >>> check_pool_factor(0)
    Traceback (most recent call last):
    ...
    ValueError: pool_factor must be a positive integer, got 0
    """
    return check_positive(value, "pool_factor")


def pool_vectors(
    vectors: np.ndarray, pool_factor: int, *, protected: int = 1
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pool one document's token vectors: ``(pooled, groups)``.

    Parameters
    ----------
    vectors
        ``(n_tokens, dim)`` unit vectors of one document, in token order.
    pool_factor
        Keep about ``1/pool_factor`` of the unprotected vectors (at least one);
        ``1`` returns the vectors unchanged.
    protected
        Leading vectors kept unpooled (pylate's ``protected_tokens``).

    Returns
    -------
    tuple of numpy.ndarray and list of numpy.ndarray
        The pooled vectors (float32; protected vectors first, then one mean per
        cluster, clusters numbered as scipy's ``fcluster`` numbers them) and, for
        each pooled vector, the positions (int64, ascending) of the tokens it
        pools.

    Examples
    --------
    >>> v = np.array([[1, 0], [1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    >>> pooled, groups = pool_vectors(v, 2, protected=0)
    >>> [g.tolist() for g in groups]
    [[0, 1, 2], [3]]
    """
    factor = check_pool_factor(pool_factor)
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (n_tokens, dim) array, got shape {array.shape}")
    n = array.shape[0]
    keep = min(max(protected, 0), n)
    to_pool = array[keep:]
    count = len(to_pool)
    clusters = max(count // factor, 1)
    if clusters >= count:
        return array, [np.array([i], dtype=np.int64) for i in range(n)]
    from scipy.cluster import hierarchy

    # Clipped at 0: repeated tokens give 1 - cos a few ulps below 0, which scipy's
    # linkage refuses (pylate then fails; elsewhere the two agree).
    distances = np.maximum(1 - to_pool @ to_pool.T, 0)
    condensed = distances[np.triu_indices(count, k=1)]
    labels = hierarchy.fcluster(
        hierarchy.linkage(condensed, method="ward"), t=clusters, criterion="maxclust"
    )
    groups = [np.array([i], dtype=np.int64) for i in range(keep)]
    means = []
    for label in range(1, clusters + 1):
        members = np.flatnonzero(labels == label)
        if len(members):
            means.append(to_pool[members].sum(axis=0) / np.float32(len(members)))
            groups.append(members.astype(np.int64) + keep)
    pooled = np.concatenate([array[:keep], np.stack(means).astype(np.float32)])
    return pooled, groups


def pool_tokenized(text: TokenizedText, pool_factor: int) -> TokenizedText:
    """``text`` with its vectors pooled, each labelled by the tokens it pools.

    A pooled vector's token is its tokens joined with ``" + "``, its span runs
    from the start of the first of their spans to the end of the last, it is
    special only if all of them are, and :attr:`~latecore.tokens.TokenizedText.groups`
    lists their positions.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> (doc,) = FakeEncoder(dim=8).encode_with_tokens(["a b a b"], is_query=False)
    >>> pooled = pool_tokenized(doc, 2)
    >>> pooled.tokens, pooled.spans, pooled.groups
    (('[D]', 'a + a', 'b + b'), (None, (0, 5), (2, 7)), ((0,), (1, 3), (2, 4)))
    """
    vectors, groups = pool_vectors(text.vectors, pool_factor)
    tokens, spans, special = [], [], []
    for group in groups.copy():
        members = group.tolist()
        tokens.append(" + ".join(text.tokens[i] for i in members))
        inside = [s for i in members if (s := text.spans[i]) is not None]
        spans.append((inside[0][0], max(end for _, end in inside)) if inside else None)
        special.append(all(text.special[i] for i in members))
    return TokenizedText(
        text=text.text,
        vectors=vectors,
        tokens=tuple(tokens),
        spans=tuple(spans),
        special=tuple(special),
        expansion=(False,) * len(groups),
        groups=tuple(tuple(g.tolist()) for g in groups),
    )
