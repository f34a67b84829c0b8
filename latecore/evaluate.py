"""Retrieval quality on labelled queries: nDCG@10, Recall@k and MRR@10, per query and mean.

:func:`evaluate` runs one system over a set of queries and scores its rankings
against graded relevance judgements (*qrels*); :func:`compare` does it for
several systems and returns a table; :func:`compare_hybrid` is that table for
hybrid search over one index (BM25 alone, MaxSim alone, every fusion, the
defaults); :func:`markdown_table` and :func:`plot_comparison` render a table as
text and as a bar chart. Labelled queries to run them on: :func:`load_eval_set`
(the two sets that ship with latecore) and :func:`load_smart_collection` (public
test collections such as CACM), both from :mod:`latecore.labelled`.

A *system* is anything that ranks documents for a query, recognised by duck
typing (latecore never imports LangChain or LlamaIndex):

- an object with ``search_batch(queries, k)`` (:class:`~latecore.index.LateIndex`,
  :class:`~latecore.hybrid.HybridSearcher`): all queries in one call;
- an object with ``retrieve(query)`` (a LlamaIndex retriever returning
  ``NodeWithScore``): its own ``similarity_top_k`` decides the depth;
- an object with ``invoke(query, k=...)`` (a LangChain retriever returning
  ``Document`` objects with ``id`` set);
- a callable ``query -> ranked list`` (wrap a :class:`~latecore.reranker.Reranker`
  and its candidates, or any other engine, in a function).

Each ranked item may be a document id (``str``) or an object carrying one:
``.id`` (latecore hits, LangChain documents), ``.node.node_id`` (LlamaIndex
``NodeWithScore``) or ``.node_id``; with ``id_key`` the id is read from the
item's metadata instead.

The metrics are computed by `ir-measures <https://ir-measur.es>`_ (trec_eval's
definitions through ``pytrec_eval``), not by hand-written code: nDCG with linear
gain (a document of grade ``g`` at rank ``i`` adds ``g / log2(i + 1)``), Recall
and reciprocal rank counting grades ``>= 1`` as relevant. Rankings are passed in
the order the system returned them (never re-sorted by score), and a query with
no results scores 0. Queries without any relevant judgement are left out, as
trec_eval does. ``ir-measures``, ``pandas`` and ``matplotlib`` are imported only
when needed: ``pip install 'latecore[eval]'``.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .fusion import FUSIONS
from .hybrid import HybridSearcher
from .labelled import EVAL_SETS, load_eval_set, load_smart_collection
from .validation import check_positive

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "EVAL_SETS",
    "Evaluation",
    "compare",
    "compare_hybrid",
    "evaluate",
    "load_eval_set",
    "load_smart_collection",
    "markdown_table",
    "plot_comparison",
]

Qrels = Mapping[str, Mapping[str, int]]
"""query id -> document id -> relevance grade (0: judged not relevant)."""


def _metric_names(k: int) -> tuple[str, str, str]:
    return ("nDCG@10", f"Recall@{k}", "MRR@10")


@dataclass(frozen=True)
class Evaluation:
    """The scores of one system on one set of labelled queries.

    Attributes
    ----------
    name
        The system's name (a column label in :func:`compare`).
    metrics
        Mean of each metric over the evaluated queries, in a fixed order:
        ``nDCG@10``, ``Recall@k``, ``MRR@10``.
    per_query
        query id -> metric -> score.
    rankings
        query id -> the document ids the system returned, best first.
    seconds
        Wall-clock time spent in the system (retrieval only, not scoring).

    Examples
    --------
    >>> result = evaluate(
    ...     lambda q: ["a", "b"], {"q": "any question"}, {"q": {"b": 1}}, name="toy"
    ... )
    >>> result.metrics
    {'nDCG@10': 0.6309..., 'Recall@10': 1.0, 'MRR@10': 0.5}
    >>> result.rankings
    {'q': ['a', 'b']}
    """

    name: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    rankings: dict[str, list[str]] = field(repr=False)
    seconds: float = 0.0

    @property
    def ms_per_query(self) -> float:
        """Mean retrieval latency in milliseconds."""
        return 1000.0 * self.seconds / max(len(self.rankings), 1)

    def to_frame(self) -> pd.DataFrame:
        """Per-query scores as a ``pandas.DataFrame`` (one row per query id)."""
        import pandas as pd

        frame = pd.DataFrame.from_dict(self.per_query, orient="index")
        frame.index.name = "query_id"
        return frame


def _item_id(item: Any, id_key: str | None) -> str:
    if isinstance(item, str):
        return item
    node = getattr(item, "node", None)
    if id_key is not None:
        metadata = getattr(node if node is not None else item, "metadata", None) or {}
        if id_key not in metadata:
            raise ValueError(f"a result has no metadata[{id_key!r}]: {item!r:.120}")
        return str(metadata[id_key])
    for candidate in (
        getattr(node, "node_id", None),
        getattr(item, "id", None),
        getattr(item, "node_id", None),
    ):
        if candidate is not None:
            return str(candidate)
    raise ValueError(
        f"cannot tell the document id of a result of type {type(item).__name__}: return ids, "
        "objects with .id (LangChain Document.id must be set) or NodeWithScore, or pass "
        "id_key to read the id from the metadata"
    )


def _rank(system: Any, queries: list[str], depth: int) -> list[list[Any]]:
    """Run ``system`` on every query text; one list of raw results per query."""
    if hasattr(system, "search_batch"):
        return [list(hits) for hits in system.search_batch(queries, depth)]
    if hasattr(system, "retrieve"):
        return [list(system.retrieve(q)) for q in queries]
    if hasattr(system, "invoke"):
        return [list(system.invoke(q, k=depth)) for q in queries]
    if callable(system):
        return [list(system(q)) for q in queries]
    raise TypeError(
        f"cannot search with a {type(system).__name__}: pass a callable query -> ranked ids, "
        "a LateIndex or HybridSearcher, a LangChain retriever or a LlamaIndex retriever"
    )


def _check_qrels(queries: Mapping[str, str], qrels: Qrels) -> list[str]:
    """Query ids to evaluate: those with at least one relevant judgement, in qrels order."""
    for qid, grades in qrels.items():
        for doc_id, grade in grades.items():
            if isinstance(grade, bool) or not isinstance(grade, numbers.Integral):
                raise TypeError(
                    f"relevance grades must be integers; qrels[{qid!r}][{doc_id!r}] is {grade!r}"
                )
    judged = [qid for qid, grades in qrels.items() if any(g > 0 for g in grades.values())]
    if not judged:
        raise ValueError("qrels has no query with a relevant (grade >= 1) document")
    missing = [qid for qid in judged if qid not in queries]
    if missing:
        raise ValueError(f"qrels judge queries with no text in queries: {missing[:5]}")
    return judged


def evaluate(
    system: Any,
    queries: Mapping[str, str],
    qrels: Qrels,
    *,
    k: int = 10,
    name: str | None = None,
    id_key: str | None = None,
) -> Evaluation:
    """Score one system's rankings of ``queries`` against ``qrels``.

    Parameters
    ----------
    system
        What ranks documents: a callable ``query -> ranked results``, a
        :class:`~latecore.index.LateIndex` or :class:`~latecore.hybrid.HybridSearcher`,
        a LangChain retriever or a LlamaIndex retriever (see the module docstring).
    queries
        query id -> query text.
    qrels
        query id -> document id -> integer grade (``0`` not relevant, ``1``
        relevant, ``2`` highly relevant, ...). Only queries with at least one
        grade ``>= 1`` are evaluated.
    k
        Cutoff of Recall@k. The system is asked for ``max(k, 10)`` results
        (``search_batch(queries, k)``, ``invoke(query, k=...)``); longer
        rankings are cut to that depth.
    name
        Label of the system in tables; defaults to its class or function name.
    id_key
        Read each result's document id from ``metadata[id_key]`` instead of its
        own id (for retrievers that do not set ids).

    Returns
    -------
    Evaluation
        Mean and per-query ``nDCG@10``, ``Recall@{k}`` and ``MRR@10``.

    Examples
    --------
    One query, two relevant documents (grades 2 and 1); the system puts the
    grade-1 document first and the grade-2 document third:

    >>> qrels = {"q1": {"d1": 2, "d2": 1, "d9": 0}}
    >>> result = evaluate(lambda q: ["d2", "d5", "d1"], {"q1": "a query"}, qrels, k=2)
    >>> dcg = 1 / math.log2(2) + 2 / math.log2(4)
    >>> ideal = 2 / math.log2(2) + 1 / math.log2(3)
    >>> math.isclose(result.metrics["nDCG@10"], dcg / ideal)
    True
    >>> result.metrics["Recall@2"], result.metrics["MRR@10"]
    (0.5, 1.0)
    """
    import ir_measures
    from ir_measures import RR, R, nDCG

    check_positive(k, "k")
    judged = _check_qrels(queries, qrels)
    depth = max(k, 10)
    texts = [queries[qid] for qid in judged]
    started = time.perf_counter()
    raw = _rank(system, texts, depth)
    seconds = time.perf_counter() - started
    rankings: dict[str, list[str]] = {}
    for qid, results in zip(judged, raw, strict=True):
        ids = [_item_id(item, id_key) for item in results]
        rankings[qid] = list(dict.fromkeys(ids))[:depth]
    # Strictly decreasing scores: trec_eval sorts by score and breaks ties by
    # document id, which would reorder the system's ranking.
    run = {
        qid: {doc_id: float(depth - rank) for rank, doc_id in enumerate(ids)}
        for qid, ids in rankings.items()
        if ids
    }
    measures = {nDCG @ 10: "nDCG@10", R @ k: f"Recall@{k}", RR @ 10: "MRR@10"}
    names = _metric_names(k)
    per_query: dict[str, dict[str, float]] = {qid: dict.fromkeys(names, 0.0) for qid in judged}
    judgements = {qid: {d: int(g) for d, g in qrels[qid].items()} for qid in judged}
    if run:
        for metric in ir_measures.iter_calc(list(measures), judgements, run):
            per_query[metric.query_id][measures[metric.measure]] = float(metric.value)
    means = {m: math.fsum(scores[m] for scores in per_query.values()) / len(judged) for m in names}
    if name is None:
        name = getattr(system, "__name__", None) or type(system).__name__
    return Evaluation(name, means, per_query, rankings, seconds)


def compare(
    systems: Mapping[str, Any] | Iterable[Evaluation],
    queries: Mapping[str, str] | None = None,
    qrels: Qrels | None = None,
    *,
    k: int = 10,
    id_key: str | None = None,
) -> pd.DataFrame:
    """A table of several systems' mean scores, one row per system.

    Parameters
    ----------
    systems
        name -> system (anything :func:`evaluate` takes, or an
        :class:`Evaluation` already computed), or an iterable of evaluations.
    queries, qrels
        As for :func:`evaluate`; needed unless every entry is an :class:`Evaluation`.
    k, id_key
        As for :func:`evaluate`.

    Raises
    ------
    ValueError
        If evaluations computed with different ``k`` are mixed, or ``queries``
        and ``qrels`` are missing for a system that still has to be evaluated.

    Returns
    -------
    pandas.DataFrame
        Index: system name (in the order given). Columns: ``nDCG@10``,
        ``Recall@{k}``, ``MRR@10`` and ``ms/query`` (retrieval latency).

    Examples
    --------
    >>> queries, qrels = {"q": "question"}, {"q": {"a": 1}}
    >>> table = compare({"first": lambda q: ["a"], "second": lambda q: ["b", "a"]},
    ...                 queries, qrels)
    >>> table[["nDCG@10", "MRR@10"]].round(3).to_dict("index")
    {'first': {'nDCG@10': 1.0, 'MRR@10': 1.0}, 'second': {'nDCG@10': 0.631, 'MRR@10': 0.5}}
    """
    import pandas as pd

    entries = (
        list(systems.items()) if isinstance(systems, Mapping) else [(None, s) for s in systems]
    )
    evaluations: list[Evaluation] = []
    for label, system in entries:
        if isinstance(system, Evaluation):
            evaluations.append(system if label is None else _renamed(system, label))
            continue
        if queries is None or qrels is None:
            raise ValueError("pass queries and qrels to evaluate systems that are not Evaluations")
        evaluations.append(evaluate(system, queries, qrels, k=k, name=label, id_key=id_key))
    names = {tuple(e.metrics) for e in evaluations}
    if len(names) > 1:
        raise ValueError(
            f"the evaluations have different metrics {sorted(names)}: evaluate them with the same k"
        )
    rows = {e.name: {**e.metrics, "ms/query": e.ms_per_query} for e in evaluations}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "system"
    return frame


def compare_hybrid(
    index: Any,
    queries: Mapping[str, str],
    qrels: Qrels,
    *,
    k: int = 100,
    fusions: Sequence[str] = FUSIONS,
    **settings: Any,
) -> pd.DataFrame:
    """Hybrid search over ``index`` against its two stages alone: one :func:`compare` table.

    Rows, in this order: ``BM25 alone`` (BM25's own nominations in BM25
    order), ``MaxSim alone`` (``index.search_batch``), ``fusion=<name>`` for each
    of ``fusions`` and ``defaults (fusion=<name>)``: a
    :class:`~latecore.hybrid.HybridSearcher` over the same index as a user gets
    it (with ``settings``). Nothing is encoded again: every row searches the
    vectors ``index`` already holds.

    Parameters
    ----------
    index
        A :class:`~latecore.index.LateIndex` holding the corpus the ``qrels`` judge.
    queries, qrels, k
        As for :func:`evaluate` (``k``: the Recall cutoff and search depth).
    fusions
        The fusions to list one by one (default: all of them).
    **settings
        :class:`~latecore.hybrid.HybridSearcher` settings applied to every
        hybrid row (``candidates=200``, ``rrf_k=20``, ...); a ``fusion`` here
        changes the defaults row only.

    Returns
    -------
    pandas.DataFrame
        As :func:`compare` returns it; :func:`markdown_table` prints it.

    Examples
    --------
    >>> from latecore import LateIndex
    >>> from latecore.testing import FakeEncoder
    >>> index = LateIndex(FakeEncoder())
    >>> _ = index.add(["bees make honey", "cats purr", "error E42: disk full"],
    ...               ids=["bee", "cat", "err"])
    >>> table = compare_hybrid(index, {"q": "what does E42 mean"}, {"q": {"err": 1}}, k=10)
    >>> list(table.index)  # doctest: +NORMALIZE_WHITESPACE
    ['BM25 alone', 'MaxSim alone', 'fusion=adaptive', 'fusion=rerank', 'fusion=rrf',
     'fusion=linear', 'defaults (fusion=adaptive)']
    >>> float(table.loc["BM25 alone", "MRR@10"])
    1.0
    """
    hybrid_settings = {name: value for name, value in settings.items() if name != "fusion"}
    depth = max(k, int(hybrid_settings.get("candidates", 0)))
    bm25_only = HybridSearcher.from_index(
        index,
        **{
            **hybrid_settings,
            "candidates": depth,
            "candidates_from": "bm25",
            "fusion": "linear",
            "alpha": 0.0,
        },
    )
    rows: dict[str, Evaluation] = {
        "BM25 alone": evaluate(bm25_only, queries, qrels, k=k, name="BM25 alone"),
        "MaxSim alone": evaluate(index, queries, qrels, k=k, name="MaxSim alone"),
    }
    searcher = HybridSearcher.from_index(index, **hybrid_settings)
    for fusion in fusions:
        label = f"fusion={fusion}"
        rows[label] = evaluate(_Fused(searcher, fusion), queries, qrels, k=k, name=label)
    defaults = HybridSearcher.from_index(index, **settings)
    label = f"defaults (fusion={defaults.fusion})"
    same = f"fusion={defaults.fusion}"
    rows[label] = (
        _renamed(rows[same], label)
        if same in rows
        else evaluate(defaults, queries, qrels, k=k, name=label)
    )
    return compare(list(rows.values()))


class _Fused:
    """A hybrid searcher that searches with one fusion (batched, as :func:`evaluate` runs it)."""

    def __init__(self, searcher: HybridSearcher, fusion: Any) -> None:
        self.searcher, self.fusion = searcher, fusion

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Any]]:
        return list(self.searcher.search_batch(queries, k, fusion=self.fusion))


def _renamed(evaluation: Evaluation, name: str) -> Evaluation:
    return Evaluation(
        name, evaluation.metrics, evaluation.per_query, evaluation.rankings, evaluation.seconds
    )


def markdown_table(frame: pd.DataFrame, *, digits: int = 3) -> str:
    """A Markdown (GitHub) table of a :func:`compare` result, numbers rounded to ``digits``.

    Examples
    --------
    >>> table = compare({"s": lambda q: ["a"]}, {"q": "x"}, {"q": {"a": 1}})
    >>> print(markdown_table(table[["nDCG@10", "MRR@10"]]))
    | system | nDCG@10 | MRR@10 |
    |---|---:|---:|
    | s | 1.000 | 1.000 |
    """
    header = [str(frame.index.name or ""), *map(str, frame.columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(frame.columns),
    ]
    for label, row in frame.iterrows():
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row.tolist()]
        lines.append("| " + " | ".join([str(label), *cells]) + " |")
    return "\n".join(lines)


def plot_comparison(
    frame: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """A grouped bar chart of a :func:`compare` table: one group per metric, one bar per system.

    Parameters
    ----------
    frame
        The table from :func:`compare`.
    metrics
        Columns to plot; by default every column scored in ``[0, 1]`` (not ``ms/query``).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        A new figure, not shown (``display(fig)`` or ``fig.savefig(...)``); made
        without pyplot, so it works under any backend and is not kept alive.

    Examples
    --------
    >>> table = compare({"a": lambda q: ["x"], "b": lambda q: []}, {"q": "?"}, {"q": {"x": 1}})
    >>> fig = plot_comparison(table)
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['nDCG@10', 'Recall@10', 'MRR@10']
    """
    from matplotlib.figure import Figure

    columns = (
        list(metrics) if metrics is not None else [c for c in frame.columns if c != "ms/query"]
    )
    figure = Figure(figsize=(max(4.0, 1.6 * len(columns) + 0.4 * len(frame)), 3.6))
    axes = figure.add_subplot()
    n = max(len(frame), 1)
    width = 0.8 / n
    positions = range(len(columns))
    for i, (label, row) in enumerate(frame[columns].iterrows()):
        offsets = [p - 0.4 + width * (i + 0.5) for p in positions]
        bars = axes.bar(offsets, row.tolist(), width, label=str(label))
        axes.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    axes.set_xticks(list(positions), columns)
    axes.set_ylim(0, 1.08)
    axes.set_ylabel("score (mean over queries)")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return figure
