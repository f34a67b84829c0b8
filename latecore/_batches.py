"""Length-sorted batches for a model pass, and padding that keeps a text's vectors the
same whatever batch it runs in.

A CPU forward pass computes each text of a batch alone except for the shapes: a
text padded to another width, or run among fewer rows, goes through other GEMM
kernels and other reduction groupings, whose rounding differs in the last bit.
With ``multiple > 1`` every text is padded (attention-masked) to its own length
rounded up to ``multiple`` and batched only with texts of that width, so alone or
coalesced with concurrent callers' texts (:mod:`latecore.batching`) it gets the
same vectors, bit for bit. Queries expanded to the query length (ColBERT's [MASK]
tokens) all have that one width already and are left as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["QUERY_WIDTH_MULTIPLE", "length_batches", "padded_to"]

QUERY_WIDTH_MULTIPLE = 16
"""Queries are padded to a multiple of this many tokens when passes may be shared."""


def length_batches(
    lengths: torch.Tensor, batch_size: int, multiple: int = 1
) -> list[tuple[torch.Tensor, int]]:
    """Batches of positions, longest texts first, each with the width it is padded to.

    Examples
    --------
    >>> import torch
    >>> [(p.tolist(), w) for p, w in length_batches(torch.tensor([3, 9, 5]), 2)]
    [([1, 2], 9), ([0], 3)]
    >>> [(p.tolist(), w) for p, w in length_batches(torch.tensor([3, 20, 5, 9]), 8, 16)]
    [([1], 32), ([3, 2, 0], 16)]
    """
    import torch

    order = torch.argsort(lengths, descending=True, stable=True)
    if multiple > 1:
        widths = (lengths + multiple - 1) // multiple * multiple
    else:
        widths = torch.zeros_like(lengths)
    ordered = widths[order].tolist()
    batches = []
    first = 0
    while first < len(order):
        last = first + 1
        while last < len(order) and last - first < batch_size and ordered[last] == ordered[first]:
            last += 1
        picked = order[first:last]
        width = ordered[first] if multiple > 1 else int(lengths[picked].max())
        batches.append((picked, width))
        first = last
    return batches


def padded_to(batch: dict[str, Any], width: int, pad_id: int) -> dict[str, Any]:
    """``batch``'s token tensors cut or padded to ``width`` columns (``input_ids`` with
    ``pad_id``, masks and the rest with 0, so padding is never attended to).

    Examples
    --------
    >>> import torch
    >>> batch = {"input_ids": torch.tensor([[5, 6]]), "attention_mask": torch.ones(1, 2)}
    >>> out = padded_to(batch, 4, 0)
    >>> out["input_ids"].tolist(), out["attention_mask"].tolist()
    ([[5, 6, 0, 0]], [[1.0, 1.0, 0.0, 0.0]])
    """
    import torch

    result = {}
    for key, tensor in batch.items():
        extra = width - tensor.shape[1]
        value = pad_id if key == "input_ids" else 0
        result[key] = (
            torch.nn.functional.pad(tensor, (0, extra), value=value)
            if extra > 0
            else tensor[:, :width]
        )
    return result
