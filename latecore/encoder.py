"""Encoders: texts in, one float32 ``(n_tokens, dim)`` multivector per text out.

:class:`Encoder` runs a ``pylate`` ColBERT model on top of :class:`~latecore.base_encoder.
BaseEncoder` (input checks, cache, fingerprint, threads, batching, pooling);
:func:`load_encoder` is the one rule adapters follow to get an encoder."""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from ._batches import QUERY_WIDTH_MULTIPLE, length_batches, padded_to
from ._quiet import quiet_load
from .base_encoder import BaseEncoder, clean_text
from .batching import DEFAULT_MAX_BATCH
from .caches import CacheLocation, DocumentCache, open_cache
from .checkpoint import CheckpointInfo, inspect_checkpoint
from .errors import LatecoreWarning, ModelLoadError, ZeroShotWarning
from .models import DEFAULT_MODEL, resolve_model
from .tokens import Span, TokenizedText

if TYPE_CHECKING:
    from pylate.models import ColBERT

__all__ = ["Encoder", "load_encoder"]

logger = logging.getLogger(__name__)

ZERO_SHOT_QUERY_LENGTH = 64
"""Query length of a zero-shot checkpoint (no expansion to train for): long questions are
kept whole. Chosen against pylate's 32 on long external questions and the project's sets
(``benchmarks/eval_hybrid.py``; figures in ``docs/benchmarks.md#hybrid-search``)."""

CHARS_PER_TOKEN_BOUND = 100
"""Upper bound on the characters one token covers (used to cut huge texts early)."""

SORT_WINDOW = 2048
"""Texts tokenized together and sorted by token count before batching (bounds memory)."""

Quantize = Literal["int8"]


class _Row(NamedTuple):
    """One text's output of :meth:`Encoder._forward`."""

    vectors: np.ndarray  # float32 (n_kept, dim), L2-normalised
    input_ids: np.ndarray  # the text's ids, without batch padding
    kept: np.ndarray  # positions in input_ids that vectors stand for


def _check_quantize(quantize: object, device: str | None) -> Quantize | None:
    """``quantize`` if it is ``None`` or ``"int8"`` on a CPU device, else ``ValueError``."""
    if quantize is None:
        return None
    if quantize != "int8":
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if device is not None and str(device).split(":")[0] != "cpu":
        raise ValueError(
            f"quantize='int8' runs on the CPU only (dynamic int8 kernels); got device={device!r}. "
            "On a GPU use quantize=None, or pass device='cpu'."
        )
    return "int8"


def _package_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("pylate", "transformers", "sentence-transformers")}


class Encoder(BaseEncoder):
    """A ColBERT model (through ``pylate``) that turns texts into multivectors.

    Parameters
    ----------
    model
        Hugging Face Hub id or local checkpoint directory. Defaults to
        ``$LATECORE_MODEL``, else :data:`DEFAULT_MODEL`. A checkpoint without a
        ColBERT head (a plain BERT or sentence-transformers encoder) is loaded as
        a *zero-shot* ColBERT: identity projection, prefix tokens taken from
        unused vocabulary entries (or, without any, embedded as the mean token
        embedding), query expansion off. Nothing is randomly initialised, so the
        same checkpoint gives bit-identical vectors in every process.
    device
        ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when available.
    batch_size
        Texts per forward pass.
    query_length, document_length
        Token limits overriding the checkpoint's own. A zero-shot checkpoint
        without query expansion gets :data:`ZERO_SHOT_QUERY_LENGTH` (capped by its
        position limit) rather than pylate's 32, so long questions are not cut;
        a trained checkpoint keeps the length it was trained with.
    do_query_expansion
        Pad queries with [MASK] up to ``query_length``; ``None`` keeps the
        checkpoint's setting (off for zero-shot checkpoints, where it hurts).
    cache
        Optional document cache, or a directory or ``redis://`` URL to open one
        at (see :class:`BaseEncoder`).
    show_progress
        Progress bar (documents/s and time left) when more than one batch is
        encoded (see :class:`BaseEncoder`).
    quantize
        ``"int8"``: run the transformer's linear layers in int8 (dynamic
        quantization, CPU only; ``device`` defaults to ``"cpu"``): more documents/s
        than float32 on a CPU with VNNI, and vectors that differ slightly, so it
        is part of the fingerprint: an int8 encoder never reads a float32
        encoder's cache entries. Queries and documents both use it. Its
        activation scale is per batch, so a vector depends slightly on the texts
        encoded with it (float32 vectors do not). Speed, ranking agreement and
        the scheme: ``docs/benchmarks.md#encoding`` and :mod:`latecore._int8`.
        ``None`` (default): float32.
    revision
        Hub revision (branch, tag or commit) when ``model`` is a Hub id.
    trust_remote_code
        Allow a checkpoint's own Python code to run (off by default).
    allow_unsafe_checkpoint
        Allow pickle-only weights and non-torch activations in Dense configs.
    max_batch, batch_wait_ms, pool_factor
        Micro-batching of concurrent calls and token pooling of documents (see
        :class:`BaseEncoder`). ``max_batch=None``: 32, or 1 (off) with
        ``quantize="int8"``, whose vectors depend on the texts batched together.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        query_length: int | None = None,
        document_length: int | None = None,
        do_query_expansion: bool | None = None,
        cache: DocumentCache | CacheLocation | None = None,
        show_progress: bool | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        allow_unsafe_checkpoint: bool = False,
        quantize: Quantize | None = None,
        max_batch: int | None = None,
        batch_wait_ms: float = 0.0,
        pool_factor: int = 1,
    ) -> None:
        self.quantize = _check_quantize(quantize, device)
        super().__init__(
            cache=cache,
            batch_size=batch_size,
            show_progress=show_progress,
            max_batch=(1 if self.quantize else DEFAULT_MAX_BATCH)
            if max_batch is None
            else max_batch,
            batch_wait_ms=batch_wait_ms,
            pool_factor=pool_factor,
        )
        self.quantize_scheme: dict[str, Any] | None = None
        self._truncation_warned: set[int] = set()  # query lengths already warned about
        model = resolve_model(model)
        self.info: CheckpointInfo = inspect_checkpoint(
            model, revision, allow_unsafe=allow_unsafe_checkpoint
        )
        if self.info.needs_remote_code and not trust_remote_code:
            raise ModelLoadError(
                f"{self.info.model_id} needs its own Python code to load (config.json has "
                "'auto_map'). Read that code, then pass trust_remote_code=True to run it."
            )
        self.trust_remote_code = trust_remote_code
        self.zero_shot = not self.info.has_colbert_head
        self.prefix_source = "checkpoint"
        self.query_length_source = "argument" if query_length is not None else "checkpoint"
        overrides: dict[str, Any] = {}
        if self.zero_shot:
            overrides, self.prefix_source = self._zero_shot_settings(do_query_expansion)
            if query_length is None and not overrides["do_query_expansion"]:
                query_length = min(ZERO_SHOT_QUERY_LENGTH, self.info.max_positions or 512)
                self.query_length_source = "zero-shot default"
        elif do_query_expansion is not None:
            overrides["do_query_expansion"] = do_query_expansion
        self.model = self._load(device, query_length, document_length, trust_remote_code, overrides)
        if self.zero_shot:
            warnings.warn(
                f"{self.info.model_id} has no ColBERT head; loaded as a zero-shot ColBERT "
                f"(identity projection, prefixes {self.model.query_prefix!r}/"
                f"{self.model.document_prefix!r} from {self.prefix_source}, query expansion "
                f"{'on' if self.model.do_query_expansion else 'off'}). Rankings are usable but a "
                f"trained ColBERT such as {DEFAULT_MODEL} is better.",
                ZeroShotWarning,
                stacklevel=2,
            )

    def _zero_shot_settings(self, do_query_expansion: bool | None) -> tuple[dict[str, Any], str]:
        settings: dict[str, Any] = {
            "do_query_expansion": bool(do_query_expansion),
            "embedding_size": self.info.hidden_size,
        }
        if {"[unused0]", "[unused1]"} <= self.info.vocab:
            settings.update(query_prefix="[unused0]", document_prefix="[unused1]")
            return settings, "unused vocabulary entries"
        return settings, "mean token embedding"

    def _load(
        self,
        device: str | None,
        query_length: int | None,
        document_length: int | None,
        trust_remote_code: bool,
        overrides: dict[str, Any],
    ) -> ColBERT:
        import torch
        from pylate.models import ColBERT
        from pylate.models.Dense import Dense

        if device is None:
            device = "cuda" if torch.cuda.is_available() and not self.quantize else "cpu"
        try:
            with quiet_load(self.show_progress), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                model = ColBERT(
                    str(self.info.path),
                    device=device,
                    query_length=query_length,
                    document_length=document_length,
                    trust_remote_code=trust_remote_code,
                    local_files_only=True,
                    **overrides,
                )
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(f"could not load {self.info.model_id}: {error}") from error
        if self.zero_shot:
            projection: Any = model[-1]
            hidden = int(projection.in_features)
            model[len(model) - 1] = Dense(
                hidden, hidden, bias=False, init_weight=torch.eye(hidden)
            ).to(device)
            transformer: Any = model[0]
            embeddings = transformer.auto_model.get_input_embeddings().weight
            original_rows = self.info.vocab_size or embeddings.shape[0]
            if embeddings.shape[0] > original_rows:
                with torch.no_grad():
                    embeddings[original_rows:] = embeddings[:original_rows].mean(dim=0)
        model.eval()
        if self.quantize == "int8":
            from ._int8 import quantize_linear_layers

            # The transformer only: the ColBERT projection is small and writes the vectors.
            self.quantize_scheme = quantize_linear_layers(model[0])
        return model

    @property
    def model_name(self) -> str:
        """The Hub id or path the model was loaded from."""
        return self.info.model_id

    @property
    def dim(self) -> int:
        """Dimension of the output vectors."""
        projection: Any = self.model[-1]
        return int(projection.out_features)

    def _model_fingerprint_fields(self) -> dict[str, Any]:
        m = self.model
        return {
            "model_id": None if self.info.revision is None else self.info.model_id,
            "revision": self.info.revision,
            "content_hash": self.info.content_hash,
            "format": self.info.format,
            "zero_shot": self.zero_shot,
            "prefix_source": self.prefix_source,
            "query_prefix": m.query_prefix,
            "document_prefix": m.document_prefix,
            "query_length": m.query_length,
            "document_length": m.document_length,
            "do_query_expansion": m.do_query_expansion,
            "attend_to_expansion_tokens": m.attend_to_expansion_tokens,
            "skiplist": sorted(int(i) for i in m.skiplist if i is not None),
            "output_dim": self.dim,
            "normalize": True,
            "pooling": 1,
            "prompts": m.prompts,
            "default_prompt_name": m.default_prompt_name,
            "parameter_dtype": str(next(m.parameters()).dtype),
            "max_chars": self.max_chars,
            "versions": _package_versions(),
            # Only when set, so that float32 fingerprints (and caches) stay as they were.
            **({"quantize": self.quantize_scheme} if self.quantize else {}),
        }

    def describe(self) -> dict[str, Any]:
        """What was detected in the checkpoint and how it is used, as plain values."""
        m = self.model
        return {
            "model": self.info.model_id,
            "path": str(self.info.path),
            "format": self.info.format,
            "zero_shot": self.zero_shot,
            "query_prefix": m.query_prefix,
            "document_prefix": m.document_prefix,
            "prefix_source": self.prefix_source,
            "expansion_token": m.tokenizer.pad_token,
            "query_length": m.query_length,
            "query_length_source": self.query_length_source,
            "document_length": m.document_length,
            "do_query_expansion": m.do_query_expansion,
            "dim": self.dim,
            "device": str(m.device),
            "quantize": self.quantize,
            "quantize_scheme": self.quantize_scheme,
            "storage_dtype": self.storage_dtype,
            "max_batch": self.max_batch,
            "batch_wait_ms": self.batch_wait_ms,
            "pool_factor": self.pool_factor,
            "remote_code": self.trust_remote_code and self.info.needs_remote_code,
            "fingerprint": self.fingerprint,
        }

    def __repr__(self) -> str:
        quantize = f", quantize={self.quantize!r}" if self.quantize else ""
        return (
            f"Encoder({self.info.model_id!r}, dim={self.dim}, zero_shot={self.zero_shot}{quantize})"
        )

    @property
    def max_chars(self) -> int:
        """Texts are cut to this many characters before tokenising.

        No token spans more than ~100 characters (longer words become one unknown
        token), so the cut never removes text the model would have kept, while a
        1 MB document costs no more to tokenise than a short one.
        """
        return CHARS_PER_TOKEN_BOUND * max(
            int(self.model.query_length or 0), int(self.model.document_length or 0)
        )

    def model_text(self, text: str) -> str:
        """The exact string the model sees for ``text``: surrogates replaced, cut to
        :attr:`max_chars` (character offsets into it are offsets into ``text``)."""
        return clean_text(text)[: self.max_chars]

    def _warn_truncated_queries(self, texts: list[str]) -> None:
        """Warn that queries were cut, once per query length; later cuts are logged at DEBUG.

        Copies made by :meth:`with_cache` share this record (and the model). The
        model lock makes the check and the record one step.
        """
        query_length = int(self.model.query_length or 0)
        budget = query_length - 3  # [CLS], the query marker, [SEP]
        lengths = [
            len(ids) for ids in self.model.tokenizer(texts, add_special_tokens=False)["input_ids"]
        ]
        too_long = sum(n > budget for n in lengths)
        if not too_long:
            return
        message = (
            f"{too_long} of {len(texts)} queries exceed query_length={query_length} tokens and "
            f"were truncated (longest: {max(lengths)} tokens)"
        )
        with self._model_lock:
            first = query_length not in self._truncation_warned
            self._truncation_warned.add(query_length)
        if not first:
            logger.debug("%s", message)
            return
        warnings.warn(
            f"{message}. Pass a larger query_length to Encoder to keep more of them. Shown once "
            "per encoder and query_length; later truncations are logged at DEBUG.",
            LatecoreWarning,
            stacklevel=4,
        )

    @property
    def _prompt(self) -> str:
        """The default prompt pylate prepends to every text (``""`` for none)."""
        name = self.model.default_prompt_name
        return (self.model.prompts.get(name) if name is not None else None) or ""

    def token_spans(self, text: str, *, is_query: bool) -> list[tuple[str, Span | None]]:
        """Each of ``text``'s vectors as ``(token, (start, end) or None)``: runs the model.

        The tokens and spans of :meth:`encode_with_tokens`, which gives the vectors too.
        """
        (tokenized,) = self.encode_with_tokens([text], is_query=is_query)
        return list(zip(tokenized.tokens, tokenized.spans, strict=True))

    def _encode_with_tokens(self, texts: list[str], *, is_query: bool) -> list[TokenizedText]:
        if is_query:
            self._warn_truncated_queries(texts)
        tokenizer = self.model.tokenizer
        prefix_id = self.model.query_prefix_id if is_query else self.model.document_prefix_id
        special_ids = set(tokenizer.all_special_ids)
        if prefix_id is not None:
            special_ids.add(prefix_id)
        result = []
        for text, row in zip(texts, self._forward(texts, is_query=is_query), strict=True):
            ids = row.input_ids.tolist()
            spans, n_real = self._token_offsets(text, ids, is_query=is_query)
            tokens = tokenizer.convert_ids_to_tokens(ids)
            kept = row.kept.tolist()
            result.append(
                TokenizedText(
                    text=text,
                    vectors=row.vectors,
                    tokens=tuple(tokens[p] for p in kept),
                    spans=tuple(spans[p] for p in kept),
                    special=tuple(p < n_real and ids[p] in special_ids for p in kept),
                    expansion=tuple(p >= n_real for p in kept),
                )
            )
        return result

    def _forward(self, texts: list[str], *, is_query: bool) -> list[_Row]:
        """The model's vectors for ``texts``, run in length-sorted batches; in input order.

        Texts are tokenized once per :data:`SORT_WINDOW`, sorted by token count
        and cut into batches of :attr:`batch_size`, each padded only to its own
        longest text, so a short text is not padded to a long neighbour (and its
        vectors depend on its neighbours only through the kernels' rounding).
        Tokenization, prefixes, prompts, lengths, the skiplist and normalisation
        are pylate's (``ColBERT.tokenize``, the module stack, the masks of
        ``ColBERT.encode``); per batch there is one forward pass, one mask, one
        normalisation and one copy to numpy. Each row also carries its input ids
        (without batch padding) and the positions its vectors stand for. Called
        with the model lock held.
        """
        import torch
        from tqdm.auto import tqdm

        model = self.model
        if self._prompt:
            texts = [self._prompt + text for text in texts]
        expand = is_query and bool(model.do_query_expansion)
        pad_id = int(model.tokenizer.pad_token_id or 0)
        skiplist = torch.tensor(
            [] if is_query else sorted({int(i) for i in model.skiplist if i is not None}),
            dtype=torch.long,
        )
        # A zero-shot model's projection is the identity latecore installed: skipping it
        # gives the same floats without a (tokens x hidden x hidden) matrix product.
        modules = list(model)[: -1 if self.zero_shot else None]
        rows: list[_Row | None] = [None] * len(texts)
        with (
            tqdm(
                total=len(texts),
                desc=f"Encoding {'queries' if is_query else 'documents'}",
                unit="query" if is_query else "doc",
                disable=not (self.show_progress and len(texts) > self.batch_size),
            ) as bar,
            torch.inference_mode(),
        ):
            for start in range(0, len(texts), SORT_WINDOW):
                window = model.tokenize(texts[start : start + SORT_WINDOW], is_query=is_query)
                tensors = {k: v for k, v in window.items() if isinstance(v, torch.Tensor)}
                width = tensors["input_ids"].shape[1]
                # Expansion pads every query to query_length: those [MASK] tokens are real.
                lengths = (
                    torch.full((len(tensors["input_ids"]),), width)
                    if expand
                    else tensors["attention_mask"].sum(dim=1)
                )
                # Alone or coalesced, a query gets the same vectors (see latecore._batches).
                shared = is_query and not expand and self.max_batch > 1
                multiple = QUERY_WIDTH_MULTIPLE if shared else 1
                for picked, width in length_batches(lengths, self.batch_size, multiple):
                    chosen = padded_to({k: v[picked] for k, v in tensors.items()}, width, pad_id)
                    batch = {k: v.contiguous().to(model.device) for k, v in chosen.items()}
                    mask = batch["attention_mask"].bool()
                    if expand:
                        mask = torch.ones_like(mask)
                    elif not is_query and len(skiplist):
                        mask &= ~torch.isin(batch["input_ids"], skiplist.to(mask.device))
                    for module in modules:
                        batch = module(batch)
                    embeddings = batch["token_embeddings"]
                    kept = torch.nn.functional.normalize(embeddings[mask], p=2, dim=1)
                    masks = mask.cpu().numpy()
                    pieces = np.split(
                        kept.to("cpu", torch.float32).numpy(), np.cumsum(masks.sum(axis=1))[:-1]
                    )
                    input_ids = batch["input_ids"].cpu().numpy()
                    for i, row in enumerate(picked.tolist()):
                        rows[start + row] = _Row(
                            pieces[i],
                            input_ids[i, : int(lengths[row])],
                            np.flatnonzero(masks[i]),
                        )
                    bar.update(len(picked))
        return [row for row in rows if row is not None]

    def _token_offsets(
        self, text: str, input_ids: list[int], *, is_query: bool
    ) -> tuple[list[Span | None], int]:
        """The span in ``text`` of each of the model's ``input_ids``, and how many are real.

        Neither pylate nor sentence-transformers returns offsets: ``ColBERT.tokenize``
        hands the text to sentence-transformers' ``Transformer.tokenize``, which
        copies the fast tokenizer's ``BatchEncoding`` into a plain dict and so drops
        its offset mapping. So this tokenizes the text once more the way that path
        does (prompt prepended, stripped, lowercased if the first module says so,
        cut to the role's length less one for the marker, which goes in after the
        first token) and checks that the ids agree token for token. This is the only
        place latecore relies on how pylate prepares text; ids past the real ones are
        query-expansion padding.
        """
        model = self.model
        tokenizer = model.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(
                f"token offsets need a fast (Rust) tokenizer; {type(tokenizer).__name__} is not one"
            )
        prompt = self._prompt
        seen = prompt + text
        lead = len(seen) - len(seen.lstrip())
        body = seen.strip()
        first_module: Any = model[0]
        if getattr(first_module, "do_lower_case", False) and len(body.lower()) == len(body):
            body = body.lower()
        prefix_id = model.query_prefix_id if is_query else model.document_prefix_id
        length = int((model.query_length if is_query else model.document_length) or 0)
        encoded = tokenizer(
            body,
            return_offsets_mapping=True,
            truncation="longest_first",
            max_length=length - 1 if prefix_id is not None else length,
        )
        ids = list(encoded["input_ids"])
        shift = lead - len(prompt)  # body offsets -> text offsets
        spans: list[Span | None] = [
            (start + shift, end + shift) if end > start and start + shift >= 0 else None
            for start, end in encoded["offset_mapping"]
        ]
        if prefix_id is not None:
            ids = [*ids[:1], prefix_id, *ids[1:]]
            spans = [*spans[:1], None, *spans[1:]]
        if input_ids[: len(ids)] != ids:
            raise ValueError(
                f"could not align the tokenizer's offsets with the model's input ids for "
                f"{text[:40]!r}; token offsets need a tokenizer that pylate calls without "
                "extra preprocessing"
            )
        spans.extend([None] * (len(input_ids) - len(ids)))
        return spans, len(ids)

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        texts = [self.model_text(t) for t in texts]
        if is_query:
            self._warn_truncated_queries(texts)
        return [row.vectors for row in self._forward(texts, is_query=is_query)]


def load_encoder(
    model: str | os.PathLike[str] | None = None,
    *,
    encoder: BaseEncoder | None = None,
    device: str | None = None,
    cache_dir: CacheLocation | None = None,
    require_cache: bool = False,
) -> BaseEncoder:
    """The encoder a component should use: the one given, or a cached :class:`Encoder`.

    This is the one rule every adapter follows. A new :class:`Encoder` for
    ``model`` always gets a :class:`~latecore.cache.MultivectorCache` in
    ``cache_dir`` (default: :func:`~latecore.cache.default_cache_dir`), or a
    :class:`~latecore.redis_cache.RedisCache` when ``cache_dir`` is a ``redis://``
    URL (see :func:`~latecore.caches.open_cache`). A given
    ``encoder`` is used as it is, except that with ``require_cache`` (rerankers,
    which see the same candidates again and again) one without a cache is given
    one in ``cache_dir`` through :meth:`BaseEncoder.with_cache`; the caller's
    encoder object is not changed.

    Raises
    ------
    ValueError
        If ``encoder`` is given together with ``model`` or ``device``, or together
        with ``cache_dir`` while it already has a cache.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> shared = FakeEncoder()
    >>> load_encoder(encoder=shared) is shared
    True
    >>> import tempfile
    >>> load_encoder(encoder=shared, cache_dir=tempfile.mkdtemp(), require_cache=True).cache is None
    False
    """
    if encoder is None:
        return Encoder(model, device=device, cache=open_cache(cache_dir))
    if model is not None or device is not None:
        raise ValueError("pass either an encoder or a model (and device), not both")
    if encoder.cache is not None:
        if cache_dir is not None:
            raise ValueError(
                "the encoder already has a cache; drop cache_dir, or pass an encoder "
                "without a cache to use one in cache_dir"
            )
        return encoder
    if require_cache:
        return encoder.with_cache(open_cache(cache_dir))
    return encoder
