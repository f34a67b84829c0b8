"""MaxSim throughput: latecore's packed kernel vs pylate's padded einsum vs raw float32 GEMM.

Workload (issue 2): 1 query of 32 tokens against 10,000 documents of 50-300 tokens
(uniform), dim 128, documents stored as float16.

- latecore: ``PackedDocuments.score`` over the packed float16 matrix (built once,
  as a ``LateIndex`` keeps it between queries).
- pylate: ``pylate.scores.colbert_scores`` on the same documents zero-padded as
  pylate pads them (``pad_sequence`` of float32 tensors); timed with and
  without the padding step.
- GEMM: the same multiply-adds as plain float32 ``torch.mm`` calls over 4k-token
  blocks into a reused output, no upcast, no reduction: once streaming through an
  already float32 copy of the matrix (twice latecore's memory traffic), and once
  on a single block that stays in cache (the machine's compute-bound peak for
  the shape; the acceptance figure).

The three are interleaved round by round after a few seconds of spin-up, and
medians are reported. Run: ``python benchmarks/bench_maxsim.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from pylate.scores import colbert_scores

from latecore.maxsim import BLOCK_TOKENS, PackedDocuments


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spin-up", type=float, default=4.0, help="seconds of warm-up")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 301, size=args.documents)
    docs16 = [rng.standard_normal((int(n), 128)).astype(np.float16) for n in lengths]
    for d in docs16:
        d /= np.linalg.norm(d.astype(np.float32), axis=1, keepdims=True).astype(np.float16)
    query = rng.standard_normal((32, 128)).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)

    packed = PackedDocuments(docs16, dtype=np.float16)
    packed32 = PackedDocuments.from_parts(packed.matrix.astype(np.float32), packed.offsets)
    blocks = packed.blocks(BLOCK_TOKENS)
    widest = max(int(packed.offsets[b] - packed.offsets[a]) for a, b in blocks)
    gemm_out = torch.empty(32 * widest)
    query_t = torch.from_numpy(query)
    doc_tensors = [torch.from_numpy(d) for d in docs16]

    def latecore_score() -> np.ndarray:
        return packed.score([query])[0]

    def pylate_pad_and_score() -> torch.Tensor:
        padded = torch.nn.utils.rnn.pad_sequence([d.float() for d in doc_tensors], batch_first=True)
        return colbert_scores(query_t[None], padded, backend="torch")[0]

    padded_once = torch.nn.utils.rnn.pad_sequence(
        [d.float() for d in doc_tensors], batch_first=True
    )

    def pylate_score_only() -> torch.Tensor:
        return colbert_scores(query_t[None], padded_once, backend="torch")[0]

    def gemm_only() -> None:
        for first, last in blocks:
            start, end = int(packed32.offsets[first]), int(packed32.offsets[last])
            block = torch.from_numpy(packed32.matrix[start:end])
            torch.mm(query_t, block.T, out=gemm_out[: 32 * (end - start)].view(32, end - start))

    first_block = torch.from_numpy(
        packed32.matrix[: int(packed32.offsets[blocks[0][1]])]
    ).contiguous()
    block_widths = [int(packed32.offsets[b] - packed32.offsets[a]) for a, b in blocks]

    def gemm_in_cache() -> None:
        # the same multiply-adds on one block that stays in cache: compute-bound peak
        for width in block_widths:
            width = min(width, first_block.shape[0])
            torch.mm(query_t, first_block[:width].T, out=gemm_out[: 32 * width].view(32, width))

    # correctness on this data (all similarities can be negative: compare where pylate is exact)
    ours = latecore_score()
    reference = np.array([(query @ d.astype(np.float32).T).max(1).sum() for d in docs16[:200]])
    assert np.abs(ours[:200] - reference).max() < 1e-4

    deadline = time.perf_counter() + args.spin_up
    while time.perf_counter() < deadline:
        latecore_score()
        gemm_only()

    names = ("latecore", "pylate+pad", "pylate", "gemm", "gemm-cache")
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        samples["latecore"].append(timed(latecore_score))
        samples["pylate+pad"].append(timed(pylate_pad_and_score))
        samples["pylate"].append(timed(pylate_score_only))
        samples["gemm"].append(timed(gemm_only))
        samples["gemm-cache"].append(timed(gemm_in_cache))
    median = {name: statistics.median(times) for name, times in samples.items()}
    n = args.documents
    flops = 2 * 32 * 128 * packed.n_tokens

    print(f"documents={n} tokens={packed.n_tokens} dim=128 query_tokens=32 storage=float16")
    print(f"torch threads={torch.get_num_threads()} rounds={args.rounds} (medians)")
    print(f"{'system':<34}{'seconds':>10}{'docs/s':>12}{'GFLOP/s':>10}")
    for name, label in (
        ("latecore", "latecore packed GEMM + reduceat"),
        ("pylate+pad", "pylate colbert_scores incl. pad"),
        ("pylate", "pylate colbert_scores (pre-padded)"),
        ("gemm", "float32 GEMM, streaming (same)"),
        ("gemm-cache", "float32 GEMM, in cache (peak)"),
    ):
        seconds = median[name]
        print(f"{label:<34}{seconds:>10.4f}{n / seconds:>12,.0f}{flops / seconds / 1e9:>10.1f}")
    print(
        f"ratio latecore / pylate (incl. pad):   {median['pylate+pad'] / median['latecore']:.1f}x"
    )
    print(f"ratio latecore / pylate (pre-padded):  {median['pylate'] / median['latecore']:.1f}x")
    peak, streaming = median["gemm-cache"], median["gemm"]
    print(f"fraction of float32 GEMM peak (in cache):   {peak / median['latecore']:.0%}")
    print(f"fraction of float32 GEMM (streaming):       {streaming / median['latecore']:.0%}")


if __name__ == "__main__":
    main()
