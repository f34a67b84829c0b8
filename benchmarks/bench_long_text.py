"""Encoding cost of a 1 MB document vs a 10,000-character one (tiny checkpoint, CPU).

``Encoder`` cuts every text to ``max_chars`` (100 characters per token of the model's
length limit) before tokenising, so a 1 MB document should cost a small multiple of a
10k-character one, not 100x. Both are encoded without a cache, interleaved round by
round after a warm-up; medians are reported. The model is the seeded tiny BERT of
``latecore.testing.write_tiny_bert_checkpoint`` (no download).

Run: ``python benchmarks/bench_long_text.py [--rounds 15]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

from latecore import Encoder
from latecore.errors import ZeroShotWarning
from latecore.testing import write_tiny_bert_checkpoint

SENTENCE = "the river flows past the old city and the market near the capital "


def text_of(n_chars: int) -> str:
    return (SENTENCE * (n_chars // len(SENTENCE) + 1))[:n_chars]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        encoder = Encoder(write_tiny_bert_checkpoint(directory), device="cpu")
        texts = {"10k chars": text_of(10_000), "1 MB": text_of(1_000_000)}
        for text in texts.values():  # warm-up
            encoder.encode_documents([text])
        times: dict[str, list[float]] = {name: [] for name in texts}
        for _ in range(args.rounds):
            for name, text in texts.items():
                start = time.perf_counter()
                encoder.encode_documents([text])
                times[name].append(time.perf_counter() - start)

    print(f"max_chars = {encoder.max_chars}, median of {args.rounds} rounds")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"  {name:>9}: {median * 1e3:8.2f} ms")
    print(f"  ratio 1 MB / 10k chars: {medians['1 MB'] / medians['10k chars']:.2f}x")


if __name__ == "__main__":
    main()
