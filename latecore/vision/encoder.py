""":class:`PageEncoder`: page images and text queries into multivectors (ColPali-style models).

Checkpoints load through transformers' own ``*ForRetrieval`` and processor classes
(:mod:`latecore.vision._families`), never through a checkpoint's own code unless
``trust_remote_code=True``, never from pickle weights unless
``allow_unsafe_checkpoint=True`` (the rules of :mod:`latecore.checkpoint`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._quiet import quiet_load
from ..base_encoder import BaseEncoder
from ..batching import DEFAULT_MAX_BATCH
from ..cache import cache_key
from ..caches import CacheLocation, DocumentCache
from ..checkpoint import CheckpointInfo, inspect_checkpoint
from ..errors import ModelLoadError
from ..pages import Page, image_digest
from ..pooling import pool_vectors
from ..quantize import as_stored
from ..validation import check_texts
from ._families import Family, family_for

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["PAGE_POOL_FACTOR", "PageEncoder"]

PAGE_POOL_FACTOR = 1
"""Default token pooling of pages: none, until the page quality benchmark supports a factor
(``docs/pages.md#pooling``)."""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("transformers", "torch", "pillow")}


class PageEncoder(BaseEncoder):
    """A ColPali-style model: page images (document side) and text queries into multivectors.

    Parameters
    ----------
    model
        Hugging Face Hub id or local checkpoint directory of a ColVision retrieval
        checkpoint: ``model_type`` ``"colqwen2"`` (ColQwen2), ``"colpali"``
        (ColPali) or ``"colmodernvbert"`` (ColModernVBert), loaded through
        transformers' ``ColQwen2ForRetrieval``, ``ColPaliForRetrieval`` or
        ``ColModernVBertForRetrieval`` and its processor.
    device
        ``"cpu"`` (default), ``"cuda"``, ...
    dtype
        Parameter dtype: ``"float32"`` (default) or ``"bfloat16"`` / ``"float16"``
        (on a GPU). Part of the fingerprint.
    cache
        Document cache (or where one lives): page vectors are cached by image
        pixels, render settings and this fingerprint (:meth:`page_key`).
    batch_size
        Pages per forward pass.
    pool_factor
        Token pooling of pages (:mod:`latecore.pooling`; default
        :data:`PAGE_POOL_FACTOR`); part of the fingerprint when above 1.
    min_pixels, max_pixels
        Override the image size range the processor resizes pages to (ColQwen2
        only): fewer pixels, fewer vectors and a faster encode. Part of the fingerprint.
    revision, trust_remote_code, allow_unsafe_checkpoint
        As for :class:`~latecore.encoder.Encoder`.
    show_progress, max_batch, batch_wait_ms
        As for :class:`~latecore.base_encoder.BaseEncoder` (micro-batching applies
        to queries).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from latecore.pages import load_pdf_pages
    >>> from latecore.testing.vision import make_test_pdf, write_tiny_colqwen2_checkpoint
    >>> encoder = PageEncoder(write_tiny_colqwen2_checkpoint(tempfile.mkdtemp()))
    >>> pages = load_pdf_pages(make_test_pdf(Path(tempfile.mkdtemp()) / "a.pdf", ["bees", None]))
    >>> [v.shape for v in encoder.encode_pages(pages)]  # 96 patches and the prompt's tokens
    [(98, 24), (98, 24)]
    >>> encoder.patch_boxes(pages[0])[5].tolist()  # a patch cell, in the page's pixels
    [102, 0, 153, 48]
    >>> encoder.encode_queries(["where are the bees"])[0].shape
    (16, 24)
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: str = "float32",
        cache: DocumentCache | CacheLocation | None = None,
        batch_size: int = 4,
        pool_factor: int = PAGE_POOL_FACTOR,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        allow_unsafe_checkpoint: bool = False,
        show_progress: bool | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        batch_wait_ms: float = 0.0,
    ) -> None:
        super().__init__(
            cache=cache,
            batch_size=batch_size,
            show_progress=show_progress,
            max_batch=max_batch,
            batch_wait_ms=batch_wait_ms,
            pool_factor=pool_factor,
        )
        self.info: CheckpointInfo = inspect_checkpoint(
            model, revision, allow_unsafe=allow_unsafe_checkpoint
        )
        if self.info.needs_remote_code and not trust_remote_code:
            raise ModelLoadError(
                f"{self.info.model_id} needs its own Python code to load (config.json has "
                "'auto_map'). Read that code, then pass trust_remote_code=True to run it."
            )
        self.trust_remote_code = trust_remote_code
        self._safetensors_only = not allow_unsafe_checkpoint
        with open(self.info.path / "config.json", encoding="utf-8") as f:
            self.model_type = str(json.load(f).get("model_type"))
        self.family: Family = family_for(self.model_type, self.info.model_id)
        if (min_pixels is not None or max_pixels is not None) and not self.family.resizable:
            raise ValueError(
                f"min_pixels / max_pixels apply to ColQwen2 checkpoints only, not {self.model_type}"
            )
        self.device = str(device or "cpu")
        self.dtype = dtype
        self.model, self.processor = self._load(min_pixels, max_pixels)

    def _load(self, min_pixels: int | None, max_pixels: int | None) -> tuple[Any, Any]:
        import torch
        import transformers

        torch_dtype = getattr(torch, self.dtype, None)
        if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
            raise ValueError(
                f"dtype must be 'float32', 'bfloat16' or 'float16', got {self.dtype!r}"
            )
        path = str(self.info.path)
        options = {"local_files_only": True, "trust_remote_code": self.trust_remote_code}
        try:
            model_class = getattr(transformers, self.family.model_class)
            processor = getattr(transformers, self.family.processor_class).from_pretrained(
                path, **options
            )
            with quiet_load(self.show_progress):
                model, loading = model_class.from_pretrained(
                    path,
                    dtype=torch_dtype,
                    output_loading_info=True,
                    # never unpickle .bin weights beside safetensors ones, unless allowed
                    use_safetensors=True if self._safetensors_only else None,
                    **options,
                )
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(f"could not load {self.info.model_id}: {error}") from error
        missing = sorted(loading.get("missing_keys") or [])
        if missing:
            raise ModelLoadError(
                f"{self.info.model_id} has no weights for {len(missing)} parameters "
                f"({', '.join(missing[:3])}, ...); transformers would draw them at random, so "
                "two processes would give different vectors. Refused: pass a complete "
                f"{self.family.model_class} checkpoint."
            )
        if min_pixels is not None or max_pixels is not None:
            image_processor = processor.image_processor
            size = dict(image_processor.size)
            size["shortest_edge"] = min_pixels or size["shortest_edge"]
            size["longest_edge"] = max_pixels or size["longest_edge"]
            image_processor.size = size
            for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
                if value is not None and hasattr(image_processor, name):
                    setattr(image_processor, name, value)
        return model.to(self.device).eval(), processor

    @property
    def model_name(self) -> str:
        """The Hub id or path the model was loaded from."""
        return self.info.model_id

    @property
    def dim(self) -> int:
        """Dimension of the output vectors."""
        return int(self.model.config.embedding_dim)

    def _image_settings(self) -> dict[str, Any]:
        settings = _jsonable(self.processor.image_processor.to_dict())
        settings.pop("processor_class", None)
        return dict(settings)

    def _model_fingerprint_fields(self) -> dict[str, Any]:
        return {
            "model_id": None if self.info.revision is None else self.info.model_id,
            "revision": self.info.revision,
            "content_hash": self.info.content_hash,
            "model_type": self.model_type,
            "image_settings": self._image_settings(),
            "query_prefix": getattr(self.processor, "query_prefix", None),
            "visual_prompt_prefix": getattr(self.processor, "visual_prompt_prefix", None),
            "output_dim": self.dim,
            "parameter_dtype": self.dtype,
            "normalize": True,
            "versions": _versions(),
        }

    def describe(self) -> dict[str, Any]:
        """What was loaded and how it is used, as plain values."""
        return {
            "model": self.info.model_id,
            "path": str(self.info.path),
            "model_type": self.model_type,
            "model_class": self.family.model_class,
            "dim": self.dim,
            "device": self.device,
            "dtype": self.dtype,
            "image_settings": self._image_settings(),
            "pool_factor": self.pool_factor,
            "storage_dtype": self.storage_dtype,
            "remote_code": self.trust_remote_code and self.info.needs_remote_code,
            "fingerprint": self.fingerprint,
        }

    def __repr__(self) -> str:
        return (
            f"PageEncoder({self.info.model_id!r}, model_type={self.model_type!r}, dim={self.dim})"
        )

    # -- queries -------------------------------------------------------------------------

    def _forward(self, batch: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Vectors (float32, L2-normalised) and input ids of each row's attended tokens."""
        import torch

        with torch.inference_mode():
            inputs = batch.to(self.device)
            embeddings = self.model(**inputs).embeddings
            mask = inputs["attention_mask"].bool()
            vectors = torch.nn.functional.normalize(embeddings.float(), p=2, dim=-1)
            ids = inputs["input_ids"].cpu().numpy()
            masks = mask.cpu().numpy()
            arrays = vectors.cpu().numpy()
        return (
            [np.ascontiguousarray(arrays[i][masks[i]]) for i in range(len(masks))],
            [ids[i][masks[i]] for i in range(len(masks))],
        )

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        if not is_query:
            raise TypeError(self._documents_message)
        # One query a forward pass: no padding, so a query's vectors are the same bit for bit
        # whatever it is batched with (micro-batching coalesces concurrent calls).
        return [self._forward(self.processor.process_queries([text]))[0][0] for text in texts]

    def query_tokens(self, text: str) -> list[str]:
        """The token each of ``text``'s query vectors stands for, in order (the query
        prefix and the augmentation tokens included)."""
        (text,) = check_texts([text], "query_tokens")
        ids = self.processor.process_queries([text])["input_ids"][0].tolist()
        return list(self.processor.tokenizer.convert_ids_to_tokens(ids))

    _documents_message = (
        "PageEncoder encodes page images: use encode_pages(pages) or LateIndex.add_pages(pages)"
    )

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Not for a page encoder: it encodes images (:meth:`encode_pages`).

        Raises
        ------
        TypeError
            Always.
        """
        raise TypeError(self._documents_message)

    # -- pages ---------------------------------------------------------------------------

    @staticmethod
    def _image_of(page: Any) -> tuple[Image.Image, int | None]:
        if isinstance(page, Page):
            dpi = page.metadata.get("dpi")
            return page.image, dpi if isinstance(dpi, int) else None
        if hasattr(page, "tobytes") and hasattr(page, "mode") and hasattr(page, "size"):
            return (page if page.mode == "RGB" else page.convert("RGB")), None
        raise TypeError(
            "encode_pages takes latecore.pages.Page values or PIL images, "
            f"got {type(page).__name__}"
        )

    def page_key(self, page: Page | Image.Image) -> bytes:
        """The cache key of a page's vectors: this fingerprint, the image's pixels (mode,
        size, bytes) and its render settings (the dpi a PDF page was rendered at)."""
        image, dpi = self._image_of(page)
        settings = json.dumps({"digest": image_digest(image), "dpi": dpi}, sort_keys=True)
        return cache_key(self.fingerprint, "page", settings)

    def _run_images(self, images: list[Image.Image]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Unpooled vectors and pixel boxes of each image, in batches; counted as documents."""
        from tqdm.auto import tqdm

        result: list[tuple[np.ndarray, np.ndarray]] = []
        with (
            self._model_lock,
            tqdm(
                total=len(images),
                desc="Encoding pages",
                unit="page",
                disable=not (self.show_progress and len(images) > self.batch_size),
            ) as bar,
        ):
            begin = time.perf_counter()
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                batch = self.processor.process_images(chunk)
                vectors, ids = self._forward(batch)
                for row, (image, v, i) in enumerate(zip(chunk, vectors, ids, strict=True)):
                    boxes = self.family.geometry(self.processor, batch, row, i, image.size)
                    result.append((v, boxes))
                bar.update(len(chunk))
            done = self._stats[0]
            self._stats[0] = replace(
                done,
                documents=done.documents + len(images),
                document_seconds=done.document_seconds + time.perf_counter() - begin,
            )
        return result

    def _pooled(self, vectors: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled vectors and the union box of each pooled vector's patches."""
        if self.pool_factor == 1:
            return vectors, boxes
        pooled, groups = pool_vectors(vectors, self.pool_factor, protected=0)
        union = np.array(
            [[*boxes[g, :2].min(axis=0), *boxes[g, 2:].max(axis=0)] for g in groups],
            dtype=np.int64,
        )
        return pooled, union

    def encode_pages(self, pages: Sequence[Page | Image.Image]) -> list[np.ndarray]:
        """Multivectors of page images, float32 ``(n_vectors, dim)`` each, through the cache.

        One vector per token the model reads for a page (its patch tokens and the
        prompt's), pooled by :attr:`pool_factor`. Cached pages (same pixels, render
        settings and fingerprint: :meth:`page_key`) are not re-encoded; each
        distinct missing page is encoded once.

        Raises
        ------
        TypeError
            If an item is neither a :class:`~latecore.pages.Page` nor a PIL image.
        """
        if isinstance(pages, Page) or hasattr(pages, "tobytes"):
            raise TypeError("encode_pages takes a sequence of pages: pass [page]")
        items = [self._image_of(p) for p in pages]
        keys = [self.page_key(p) for p in pages]
        stored: list[np.ndarray | None] = (
            [None] * len(keys) if self._cache is None else list(self._cache.get_many(keys))
        )
        result = [None if a is None else a.astype(np.float32) for a in stored]
        missing: dict[bytes, int] = {}
        for position, (key, array) in enumerate(zip(keys, result, strict=True)):
            if array is None:
                missing.setdefault(key, position)
        if missing:
            fresh = [
                self._pooled(v, b)[0]
                for v, b in self._run_images([items[p][0] for p in missing.values()])
            ]
            if self._cache is not None:
                self._cache.put_many(list(missing), fresh)
            rounded = {
                key: as_stored(a, self.storage_dtype) for key, a in zip(missing, fresh, strict=True)
            }
            result = [rounded[k] if a is None else a for k, a in zip(keys, result, strict=True)]
        return [a for a in result if a is not None]

    def encode_pages_with_boxes(
        self, pages: Sequence[Page | Image.Image]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each page's vectors (as :meth:`encode_pages` returns them) and their pixel boxes.

        Runs the model (the cache is neither read nor written): what explanations use.
        """
        images = [self._image_of(p)[0] for p in pages]
        result = []
        for vectors, boxes in self._run_images(images) if images else []:
            pooled, union = self._pooled(vectors, boxes)
            result.append((as_stored(pooled, self.storage_dtype), union))
        return result

    def patch_boxes(self, page_or_size: Page | Image.Image | tuple[int, int]) -> np.ndarray:
        """Pixel boxes ``(x0, y0, x1, y1)`` (int64, ``(n_vectors, 4)``) of a page's vectors.

        One per vector :meth:`encode_pages` returns for the page, in the same
        order, in the page image's pixels: a patch token's grid cell, the whole
        page for a prompt token; after pooling, the union of the pooled vectors'
        boxes. Without pooling a ``(width, height)`` size is enough (no model
        run); with pooling the page itself is needed (the model runs once).

        Raises
        ------
        ValueError
            For a size while :attr:`pool_factor` is above 1.
        """
        if isinstance(page_or_size, tuple):
            if self.pool_factor > 1:
                raise ValueError(
                    "with pool_factor > 1 a page's boxes depend on its vectors: pass the page"
                )
            from PIL import Image

            width, height = (int(v) for v in page_or_size)
            blank = Image.new("RGB", (width, height), "white")
            batch = self.processor.process_images([blank])
            ids = batch["input_ids"][0][batch["attention_mask"][0].bool()].numpy()
            return self.family.geometry(self.processor, batch, 0, ids, (width, height))
        if self.pool_factor == 1:
            return self.patch_boxes(self._image_of(page_or_size)[0].size)
        return self.encode_pages_with_boxes([page_or_size])[0][1]
