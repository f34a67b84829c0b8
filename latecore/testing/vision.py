"""Test support for pages: tiny seeded ColQwen2, ColPali and ColModernVBert checkpoints, PDFs.

:func:`write_tiny_colqwen2_checkpoint` writes a randomly initialised (seeded)
ColQwen2 (one layer of width 32) with its processor and a word-level
tokenizer built here, loadable offline by :class:`~latecore.vision.PageEncoder`
through transformers' own classes. Its image processor is set to small images
(:data:`TINY_MAX_PIXELS`), so a page gives about a hundred vectors;
:func:`write_tiny_colpali_checkpoint` and :func:`write_tiny_colmodernvbert_checkpoint`
do the same for ColPali and ColModernVBert.
:func:`make_test_pdf` writes a PDF with matplotlib (no system dependency).
torch, transformers and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .checkpoints import _tiny_words, _word_level
from .seeding import seeded_torch

__all__ = [
    "TINY_MAX_PIXELS",
    "TINY_MIN_PIXELS",
    "make_test_pdf",
    "write_tiny_colmodernvbert_checkpoint",
    "write_tiny_colpali_checkpoint",
    "write_tiny_colqwen2_checkpoint",
]

TINY_MIN_PIXELS = 28 * 28 * 16
"""Smallest image (in pixels) the tiny checkpoint's processor resizes to: 16 vectors."""

TINY_MAX_PIXELS = 28 * 28 * 96
"""Largest image the tiny checkpoint's processor resizes to: at most 96 patch vectors."""

_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "[UNK]",
]
_PROMPT_WORDS = ["query", "describe", "the", "image", "user", "page", "table", "chart"]


def _qwen_tokenizer() -> Any:
    from transformers import PreTrainedTokenizerFast

    words = [*_tiny_words(), *_PROMPT_WORDS, *".,?!':;-()"]
    tokenizer = _word_level(_QWEN_SPECIALS, words)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=_QWEN_SPECIALS[1:7],
        model_max_length=4096,
    )


def write_tiny_colqwen2_checkpoint(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write a tiny, seeded, randomly initialised ColQwen2 and its processor to ``path``.

    One text layer and one vision block of width 32, 24-dimensional output
    vectors, safetensors weights; the same seed writes the same weights. Images
    are resized to between :data:`TINY_MIN_PIXELS` and :data:`TINY_MAX_PIXELS`.

    Returns
    -------
    pathlib.Path
        ``path``, holding ``config.json``, ``model.safetensors``, the processor
        and the tokenizer.

    Examples
    --------
    >>> import tempfile
    >>> folder = write_tiny_colqwen2_checkpoint(tempfile.mkdtemp())
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['config.json', 'model.safetensors', 'processor_config.json', 'tokenizer.json',
     'tokenizer_config.json']
    """
    from transformers import (
        ColQwen2Config,
        ColQwen2ForRetrieval,
        ColQwen2Processor,
        Qwen2VLImageProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _qwen_tokenizer()
    image_processor = Qwen2VLImageProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    ColQwen2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        str(path)
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _QWEN_SPECIALS}
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3]},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision_config = {"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2}
    config = ColQwen2Config(
        vlm_config={
            "model_type": "qwen2_vl",
            "text_config": text_config,
            "vision_config": vision_config,
            "image_token_id": ids["<|image_pad|>"],
            "video_token_id": ids["<|video_pad|>"],
            "vision_start_token_id": ids["<|vision_start|>"],
            "vision_end_token_id": ids["<|vision_end|>"],
        },
        embedding_dim=24,
    )
    with seeded_torch(seed):
        model = ColQwen2ForRetrieval(config)
    model.save_pretrained(str(path), safe_serialization=True)
    return path


_VBERT_SPECIALS = [
    "[PAD]",
    "[UNK]",
    "[MASK]",
    "<|begin_of_text|>",
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
]


def write_tiny_colmodernvbert_checkpoint(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write a tiny, seeded, randomly initialised ColModernVBert and its processor to ``path``.

    A one-layer ModernBERT and a one-layer SigLIP of width 32, 24-dimensional
    output vectors, safetensors weights. Pages are resized to at most 256 pixels
    a side and split into tiles of 128 (16 vectors each, after a pixel shuffle of
    2) plus the whole page downscaled: about 80 patch vectors a page.

    Examples
    --------
    >>> import json, tempfile
    >>> folder = write_tiny_colmodernvbert_checkpoint(tempfile.mkdtemp())
    >>> json.loads((folder / "config.json").read_text())["model_type"]
    'colmodernvbert'
    """
    from transformers import (
        ColModernVBertConfig,
        ColModernVBertForRetrieval,
        ColModernVBertProcessor,
        Idefics3ImageProcessor,
        PreTrainedTokenizerFast,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    words = [*_tiny_words(), *_PROMPT_WORDS, "assistant", *".,?!':;-()"]
    model = _word_level(_VBERT_SPECIALS, words)
    vocab = model.get_vocab()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=model,
        unk_token="[UNK]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        bos_token="<|begin_of_text|>",
        additional_special_tokens=_VBERT_SPECIALS[3:],
        model_max_length=2048,
    )
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": 256}, max_image_size={"longest_edge": 128}, do_image_splitting=True
    )
    ColModernVBertProcessor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=16
    ).save_pretrained(str(path))
    begin, end = vocab["<|begin_of_text|>"], vocab["<end_of_utterance>"]
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 2048,
        "pad_token_id": vocab["[PAD]"],
        "bos_token_id": begin,
        "eos_token_id": end,
        "cls_token_id": begin,
        "sep_token_id": end,
        "global_attn_every_n_layers": 1,
        "local_attention": 16,
    }
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 128,
        "patch_size": 16,
    }
    config = ColModernVBertConfig(
        vlm_config={
            "model_type": "modernvbert",
            "text_config": text_config,
            "vision_config": vision_config,
            "image_token_id": vocab["<image>"],
            "pixel_shuffle_factor": 2,
        },
        embedding_dim=24,
    )
    with seeded_torch(seed):
        retrieval = ColModernVBertForRetrieval(config)
    retrieval.save_pretrained(str(path), safe_serialization=True)
    return path


def write_tiny_colpali_checkpoint(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write a tiny, seeded, randomly initialised ColPali (PaliGemma) and its processor.

    A one-layer Gemma and a one-layer SigLIP of width 32, 24-dimensional output
    vectors, safetensors weights; pages are resized to 112 x 112 pixels, a 7 x 7
    patch grid: 49 patch vectors a page.

    Examples
    --------
    >>> import json, tempfile
    >>> folder = write_tiny_colpali_checkpoint(tempfile.mkdtemp())
    >>> json.loads((folder / "config.json").read_text())["model_type"]
    'colpali'
    """
    from transformers import (
        ColPaliConfig,
        ColPaliForRetrieval,
        ColPaliProcessor,
        PreTrainedTokenizerFast,
        SiglipImageProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]
    words = [*_tiny_words(), *_PROMPT_WORDS, "question", *".,?!':;-()"]
    model = _word_level(specials, words, unk_token="<unk>")
    vocab = model.get_vocab()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=model,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        model_max_length=2048,
    )
    image_processor: Any = SiglipImageProcessor(size={"height": 112, "width": 112})
    image_processor.image_seq_length = 49
    processor: Any = ColPaliProcessor(image_processor=image_processor, tokenizer=tokenizer)
    processor.save_pretrained(str(path))
    size = len(processor.tokenizer)  # the processor adds its location and segment tokens
    text_config = {
        "model_type": "gemma",
        "vocab_size": size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "pad_token_id": vocab["<pad>"],
        "bos_token_id": vocab["<bos>"],
        "eos_token_id": vocab["<eos>"],
    }
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 112,
        "patch_size": 16,
        "projection_dim": 32,
    }
    config = ColPaliConfig(
        vlm_config={
            "model_type": "paligemma",
            "text_config": text_config,
            "vision_config": vision_config,
            "image_token_index": processor.image_token_id,
            "vocab_size": size,
            "projection_dim": 32,
            "hidden_size": 32,
        },
        embedding_dim=24,
    )
    with seeded_torch(seed):
        retrieval = ColPaliForRetrieval(config)
    retrieval.save_pretrained(str(path), safe_serialization=True)
    return path


def _text_page(fig: Any, text: str) -> None:
    import textwrap

    fig.text(0.08, 0.92, textwrap.fill(text, 40), fontsize=11, va="top", family="DejaVu Sans")


def _scan_page(fig: Any, number: int) -> None:
    """An image-only page: a deterministic pattern, no text layer."""
    import numpy as np

    rng = np.random.default_rng(number)
    ax = fig.add_axes((0.1, 0.35, 0.8, 0.55))
    ax.imshow(rng.random((12, 9)), cmap="gray", interpolation="nearest")
    ax.axis("off")


def _table_page(fig: Any) -> None:
    ax = fig.add_axes((0.1, 0.4, 0.8, 0.5))
    ax.axis("off")
    rows = [["city", "river", "people"], ["paris", "seine", "2.1"], ["london", "thames", "8.9"]]
    ax.table(cellText=rows[1:], colLabels=rows[0], loc="center")


def _chart_page(fig: Any) -> None:
    ax = fig.add_axes((0.15, 0.3, 0.75, 0.55))
    ax.bar(["north", "south", "east"], [3, 7, 5], color=["#c33", "#36c", "#3a3"])
    ax.set_title("sales chart")


def make_test_pdf(
    path: str | os.PathLike[str],
    pages: Sequence[str | None],
    *,
    with_table: bool = False,
    with_chart: bool = False,
) -> Path:
    """Write a small PDF (4.25 x 5.5 inches a page) with one page per entry of ``pages``.

    Parameters
    ----------
    path
        The file to write.
    pages
        Each entry is a page: its text (drawn as real PDF text, so the page has
        a text layer), or ``None`` for an image-only "scan" without any text layer
        (a grey pattern that differs from page to page).
    with_table, with_chart
        Append a page holding a small table (its cells are text) and a page
        holding a bar chart drawn with matplotlib (title ``"sales chart"``).

    Returns
    -------
    pathlib.Path
        ``path``. The same arguments write the same bytes.

    Examples
    --------
    >>> import tempfile
    >>> pdf = make_test_pdf(Path(tempfile.mkdtemp()) / "a.pdf", ["one", None], with_chart=True)
    >>> pdf.read_bytes()[:5]
    b'%PDF-'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(pages, str):
        raise TypeError("pages must be a sequence of page texts (or None), not one string")
    drawers: list[Callable[[Any], None]] = [
        functools.partial(_text_page, text=text)
        if text is not None
        else functools.partial(_scan_page, number=number)
        for number, text in enumerate(pages, start=1)
    ]
    if with_table:
        drawers.append(_table_page)
    if with_chart:
        drawers.append(_chart_page)
    stamp = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}
    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(path, metadata=stamp) as pdf:
        for draw in drawers:
            fig = plt.figure(figsize=(4.25, 5.5))
            try:
                draw(fig)
                pdf.savefig(fig)
            finally:
                plt.close(fig)
    return path
