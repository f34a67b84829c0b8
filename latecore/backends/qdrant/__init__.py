"""The ``qdrant`` backend: Qdrant's engine proposes candidates, MUVERA first, MaxSim second.

Each document is one Qdrant point with two named vectors and a payload:

- ``"muvera"``: the document's MUVERA encoding (:mod:`latecore.muvera`, 5,120
  dimensions by default), dot product, float16, searched through an HNSW graph;
- ``"colbert"``: its token vectors as one multivector (MaxSim comparator, dot
  product, float16 by default) with HNSW *disabled* (``m=0``: a graph under a
  MaxSim distance takes hours to build and is not needed here);
- payload ``latecore_id``, ``text``, ``metadata`` and ``digest`` (a hash of
  vectors, text, metadata and MUVERA settings, used to re-synchronise).

Point ids are ``uuid5(LATECORE_NAMESPACE, id)`` (:func:`point_id`): Qdrant
accepts only integers and UUIDs. A query is one request: the engine takes the
best ``prefetch`` points by the query's MUVERA encoding on ``"muvera"``, scores
those by MaxSim on ``"colbert"`` and returns the best ``n_candidates``; they are
then re-scored by exact MaxSim (:meth:`~latecore.store.StoreView.rank`), so the
scores equal ``exact``'s (``rescore=False`` keeps the engine's float16 MaxSim).
A collection of at most ``prefetch`` points skips the first stage: every point
is scored by MaxSim in the engine, and the result is ``exact``'s top ``k``.

Where the collection lives (one schema for both engines):

- ``path=``: an embedded `qdrant-edge <https://pypi.org/project/qdrant-edge-py/>`_
  shard in that directory, created on the first documents and reopened with
  ``EdgeShard.load`` (one process at a time: the shard locks its write-ahead log);
- nothing: an embedded shard in a temporary directory, removed by
  :meth:`QdrantBackend.close` or at exit (a saved index then re-indexes its
  documents into a new one on load);
- ``url=`` (``api_key=`` or ``$QDRANT_API_KEY``, ``prefer_grpc``, ``timeout``):
  a Qdrant server or cluster through qdrant-client;
- ``client=``: a ``QdrantClient`` of yours (neither saved nor closed).

Indexing. An embedded shard builds its HNSW graph only in
:meth:`QdrantBackend.build` (``LateIndex.build()``), which blocks, and
automatically at the end of an :meth:`~QdrantBackend.add` once
``optimize_after`` points were written since the last build. Points written
since then sit in an unindexed segment that every query scans in full, so
searches are correct at any time, only slower. A server indexes in the
background; ``build`` waits for it.

Saving and loading. :meth:`~latecore.index.LateIndex.save` records the
connection (never an API key) and the settings, MUVERA's included, so a loaded
index encodes queries as its documents were. :meth:`~latecore.index.LateIndex.load`
reopens the collection and re-synchronises it with the saved documents by
digest: missing or changed points are upserted, unknown ones deleted (the
collection belongs to the index). When the index keeps its token vectors only
in the engine (``store.holds_vectors`` is ``False``), only unknown points can
be repaired: a document the engine lost is an
:class:`~latecore.errors.IndexFormatError`.

Indexes saved by latecore before qdrant-edge (qdrant-client's local mode): an
in-memory collection is re-indexed into a temporary shard on load; a local
collection directory cannot be read by qdrant-edge, and loading names the way
out: ``LateIndex.load(saved, encoder, path="<new dir>")`` re-indexes from the
saved vectors.

Requires ``pip install 'latecore[qdrant]'``. Nothing is pickled: the shard is
qdrant-edge's own format (JSON, memory-mapped arrays, its write-ahead log).

The package: :mod:`~latecore.backends.qdrant.backend` (the backend, a
:class:`~latecore.backends.mirror.MirrorBackend`), :mod:`~latecore.backends.qdrant.schema`
(the collection schema both engines create, point ids, digests),
:mod:`~latecore.backends.qdrant.table` (what both engines offer),
:mod:`~latecore.backends.qdrant.edge` and :mod:`~latecore.backends.qdrant.server`
(the calls to each engine), :mod:`~latecore.backends.qdrant.filtering` (filters
translated into Qdrant's) and :mod:`~latecore.backends.qdrant.legacy` (indexes
saved before qdrant-edge).
"""

from __future__ import annotations

from .backend import QdrantBackend
from .schema import LATECORE_NAMESPACE, point_id

__all__ = ["LATECORE_NAMESPACE", "QdrantBackend", "point_id"]
