"""Dynamic int8 linear layers for CPU inference: the engine of ``Encoder(quantize="int8")``.

Every ``torch.nn.Linear`` inside the transformer becomes an :class:`Int8Linear`:
weights are quantized once, per output channel (symmetric int8); activations are
quantized on the fly, per call, to uint8 by PyTorch's dynamic quantized linear
kernel (oneDNN or FBGEMM). The output projection of the ColBERT head stays in
float32: it is small and it writes the vectors.

Two measured choices keep rankings close to float32 (all-MiniLM-L6-v2 as a
zero-shot ColBERT on the project's labelled sets; ``benchmarks/bench_encode.py``,
figures in ``docs/benchmarks.md#int8``):

- **The first token of each sequence is quantized on its own.** A BERT-style
  encoder parks massive activations on its first token ([CLS], an attention
  sink), several times the other tokens' largest values in the feed-forward
  layers. One activation scale for the whole batch then spends most of its 256
  levels on those rows. Scaling the first tokens separately raised the mean
  top-10 overlap with float32.
- **Full 8-bit activations where the CPU has VNNI** (or AMX): without it the
  kernels use 7 bits (``reduce_range``) to stay clear of an int16 overflow in
  the older instructions, and the rankings drift further.

Torch's ``quantize_dynamic`` (``torch.ao.quantization``, deprecated) can do
per-channel weights but always asks its kernels for 7-bit activations and has one
activation scale per call, so the layers are built here from the quantized
operators it uses. With its defaults (per-tensor weights too) the top-10 overlap
was far lower.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["ENGINES", "Int8Linear", "int8_engine", "quantize_linear_layers"]

ENGINES = ("onednn", "x86", "fbgemm")
"""PyTorch quantized engines used for int8, in order of preference (oneDNN measured
faster than x86 here). ``qnnpack`` (ARM) is not used: on x86 it ran slower than float32
(``docs/benchmarks.md#int8``)."""

_ENGINE_LOCK = threading.Lock()


def int8_engine() -> str | None:
    """The quantized engine int8 layers are packed for, or ``None`` if this PyTorch has none."""
    supported = set(torch.backends.quantized.supported_engines)
    return next((engine for engine in ENGINES if engine in supported), None)


def _has_vnni() -> bool:
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    return bool(probe()) if probe is not None else False


@contextmanager
def _packing_engine(engine: str) -> Iterator[None]:
    """Switch the process-wide quantized engine while weights are packed, then restore it.

    Packed weights remember their engine, so later calls run on it whatever the
    global setting is.
    """
    with _ENGINE_LOCK:
        previous = torch.backends.quantized.engine
        torch.backends.quantized.engine = engine
        try:
            yield
        finally:
            torch.backends.quantized.engine = previous


class Int8Linear(torch.nn.Module):
    """``y = x W^T + b`` with int8 weights (per output channel) and dynamic uint8 activations.

    For an input of shape ``(batch, seq, in)`` the tokens at position 0 are
    quantized with their own scale (see the module docstring). Inference only.
    """

    def __init__(self, linear: torch.nn.Linear, *, reduce_range: bool) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        quantized = torch.quantize_per_channel(
            weight,
            scales.double(),
            torch.zeros(weight.shape[0], dtype=torch.long),
            0,
            torch.qint8,
        )
        bias = None if linear.bias is None else linear.bias.detach().float()
        self._packed = torch.ops.quantized.linear_prepack(quantized, bias)
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.reduce_range = reduce_range

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed, self.reduce_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] < 2:
            return self._linear(x)
        x = x.contiguous()
        first = x[:, 0].clone()
        # Zero the first tokens so that they do not set the scale of the rest (zero
        # is inside every range); put them back before anyone else reads x.
        x[:, 0] = 0
        try:
            y = self._linear(x)
        finally:
            x[:, 0] = first
        y[:, 0] = self._linear(first)
        return y

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"reduce_range={self.reduce_range}"
        )


def quantize_linear_layers(module: torch.nn.Module) -> dict[str, Any]:
    """Replace every ``torch.nn.Linear`` inside ``module`` by an :class:`Int8Linear`, in place.

    Returns
    -------
    dict
        The scheme, as plain values for a fingerprint: engine, whether activations
        use 7 bits, how many layers were replaced.

    Raises
    ------
    ValueError
        If this PyTorch build has none of the :data:`ENGINES`.
    """
    engine = int8_engine()
    if engine is None:
        raise ValueError(
            "quantize='int8' needs one of PyTorch's x86 quantized engines "
            f"{', '.join(ENGINES)}; this build has "
            f"{', '.join(torch.backends.quantized.supported_engines) or 'none'}. "
            "Use quantize=None."
        )
    reduce_range = not _has_vnni()
    targets = [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
    ]
    with _packing_engine(engine), torch.no_grad():
        for parent, name, child in targets:
            setattr(parent, name, Int8Linear(child, reduce_range=reduce_range))
    return {
        "dtype": "int8",
        "weights": "per-channel symmetric",
        "activations": "dynamic uint8, first token scaled apart",
        "engine": engine,
        "reduce_range": reduce_range,
        "layers": len(targets),
    }
