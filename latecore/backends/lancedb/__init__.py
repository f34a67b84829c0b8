"""The ``lancedb`` backend: a LanceDB table proposes candidates by its multivector search.

Each document is one row of a LanceDB table (``table_name``, default
``"latecore"``) with five columns:

- ``latecore_id`` (string): the document id, the key of every upsert and delete;
- ``text`` and ``metadata`` (the metadata as a JSON string): copies for
  anyone reading the table directly (latecore reads them from its store);
- ``digest``: a hash of the vectors, text and metadata, used to re-synchronise;
- ``vectors``: the token vectors, ``list<fixed_size_list<float16, dim>>``
  (``datatype="float32"`` for float32): LanceDB's multivector type.

A query is one LanceDB multivector search: the engine sums, over the query's
tokens, each token's best cosine similarity to the row's tokens (MaxSim) and
returns the best ``n_candidates`` rows, which are then re-scored by exact
MaxSim (:meth:`~latecore.store.StoreView.rank`), so the scores equal
``exact``'s. LanceDB supports only the cosine metric for multivectors; latecore's
token vectors are unit length, so cosine is their dot product and LanceDB's
``_distance`` of a row scanned in full is ``n_query_tokens - MaxSim`` (to
float16 rounding of the stored vectors; checked in the tests).

Indexing. Below ``build_min`` rows, or until :meth:`LanceDBBackend.build`
(``LateIndex.build()``), every search scans every row: LanceDB's ordering is
then exact MaxSim's. :meth:`~LanceDBBackend.build` trains an IVF-PQ index over
every token vector of the ``vectors`` column (``num_partitions``,
``num_sub_vectors``, ``num_bits``, ``max_iterations``, ``sample_rate``) and a
B-tree over ``latecore_id``; a search then probes ``nprobes`` partitions per
query token, with approximate distances (``refine_factor`` re-reads the stored
vectors of ``refine_factor * n_candidates`` rows to order them exactly).
Rows written after the build are scanned in full by every search until the
next optimisation: :meth:`~LanceDBBackend.add` runs LanceDB's ``optimize``
(compaction, old versions older than ``keep_versions_s`` removed, new rows
added to the index without retraining it) once ``optimize_after`` rows were
written since the last one.

Where the table lives: ``uri`` is a local directory (a LanceDB database: the
table is ``<uri>/<table_name>.lance``), by default a temporary one removed by
:meth:`LanceDBBackend.close` or at exit; or an object-store URI (``s3://``,
``gs://``, ``az://``) passed through to ``lancedb.connect`` with
``storage_options``.

Saving and loading. :meth:`~latecore.index.LateIndex.save` records the uri, the
table name and the settings (storage options only without anything that looks
like a secret: pass those again to :meth:`~latecore.index.LateIndex.load`); the
table stays where it is. :meth:`~latecore.index.LateIndex.load` re-synchronises
the table with the saved documents by digest: missing or changed rows are
upserted, unknown ones deleted (the table belongs to the index). When the index
keeps its token vectors only in the table (``vectors="engine"``), only unknown
rows can be repaired: a document the table lost is an
:class:`~latecore.errors.IndexFormatError`.

Requires ``pip install 'latecore[lancedb]'``. Nothing is pickled: the table is
Lance's own format (Arrow-based data files, protobuf manifests).

The package: :mod:`~latecore.backends.lancedb.backend` (the backend, a
:class:`~latecore.backends.mirror.MirrorBackend`) and
:mod:`~latecore.backends.lancedb.table` (the calls to LanceDB and the Arrow rows).
"""

from __future__ import annotations

from .backend import LanceDBBackend, public_storage_options

__all__ = ["LanceDBBackend", "public_storage_options"]
