"""Corpus encoding on Ray: documents/s of ``encode_corpus`` with 1 and 2 actors.

Systems, each encoding ``--n`` new texts per round into an empty disk cache:

- **one process**: ``Encoder.encode_documents`` in this process through a cache
  (torch's own threads: one per core);
- **Ray, 1 actor** and **Ray, 2 actors**: ``EncoderPool.encode_corpus`` on a local
  Ray (``ray.init``, this machine only), each actor reserving one CPU (so Ray gives
  its torch one thread) and running tasks of ``--task-size`` texts.

The pools are started before timing (their model loads are not timed: a pool
keeps its actors across jobs); the driver's cache check, the task plan and the
writes into the cache are timed. Systems run interleaved (A, B, C then reversed)
for ``--rounds`` rounds after one untimed spin-up round; texts are new in every
run (a run never hits the cache). Texts: 8-120 words cut from the sample corpus.
Model: the bundled all-MiniLM-L6-v2 (``--model tiny``: the seeded tiny BERT).
Reported: median documents/s and the ratios to one process and to one actor.

Run: ``python benchmarks/bench_distributed.py`` (about 3 minutes on 2 cores);
``--device cuda --gpus 1`` on a GPU machine (one GPU per actor).
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
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LATECORE_PROGRESS", "0")


def make_texts(count: int, seed: int) -> list[str]:
    """``count`` texts of 8-120 words cut from the sample corpus, all distinct."""
    lines = files("latecore").joinpath("data/sample_corpus.jsonl").read_text("utf-8")
    words = " ".join(json.loads(line)["text"] for line in lines.splitlines() if line).split()
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        start = rng.randrange(len(words))
        size = rng.randint(8, 120)
        texts.append(" ".join((words * 2)[start : start + size]) + f" #{seed}-{i}")
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=160, help="texts per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--task-size", type=int, default=32)
    parser.add_argument("--model", choices=("minilm", "tiny"), default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpus", type=float, default=0.0, help="GPUs per actor")
    args = parser.parse_args()

    import ray
    import torch

    from latecore import MultivectorCache
    from latecore.distributed import EncoderPool, EncoderSpec
    from latecore.errors import ZeroShotWarning
    from latecore.testing import bundled_minilm_path, write_tiny_bert_checkpoint

    root = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    model = (
        str(bundled_minilm_path())
        if args.model == "minilm"
        else str(write_tiny_bert_checkpoint(root / "tiny", seed=0))
    )
    spec = EncoderSpec(model, {"device": args.device})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        local = spec.build()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    pools = {
        actors: EncoderPool(spec, num_actors=actors, num_cpus=1, num_gpus=args.gpus)
        for actors in (1, 2)
    }
    for pool in pools.values():
        pool.actor_pids()  # wait until every model is loaded
    runs = iter(range(10**6))

    def one_process(texts: list[str]) -> float:
        encoder = local.with_cache(MultivectorCache(root / f"cache-{next(runs)}"))
        start = time.perf_counter()
        encoder.encode_documents(texts)
        return len(texts) / (time.perf_counter() - start)

    def on_ray(actors: int) -> Callable[[list[str]], float]:
        def run(texts: list[str]) -> float:
            report = pools[actors].encode_corpus(
                texts, cache=root / f"cache-{next(runs)}", task_size=args.task_size
            )
            assert report.encoded == len(texts), report
            return report.documents_per_second

        return run

    systems = {"one process": one_process, "Ray, 1 actor": on_ray(1), "Ray, 2 actors": on_ray(2)}
    rates: dict[str, list[float]] = {name: [] for name in systems}
    names = list(systems)
    try:
        for round_number in range(args.rounds + 1):
            order = names if round_number % 2 else names[::-1]
            for name in order:
                texts = make_texts(args.n, seed=10 * round_number + names.index(name))
                rate = systems[name](texts)
                if round_number:  # round 0 is the spin-up
                    rates[name].append(rate)
    finally:
        for pool in pools.values():
            pool.close()
        ray.shutdown()

    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(
        f"model={args.model} device={args.device} n={args.n} rounds={args.rounds} "
        f"task_size={args.task_size} cores={os.cpu_count()} torch_threads={torch.get_num_threads()}"
    )
    print("| system | docs/s (median) | vs one process | vs 1 actor |")
    print("|---|---:|---:|---:|")
    for name, median in medians.items():
        print(
            f"| {name} | {median:.1f} | {median / medians['one process']:.2f}x "
            f"| {median / medians['Ray, 1 actor']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
