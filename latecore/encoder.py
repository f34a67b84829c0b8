"""Encoders: texts in, one float32 ``(n_tokens, dim)`` multivector per text out.

:class:`BaseEncoder` holds everything that does not depend on the model: input
checks, the document cache (hits are never re-encoded, misses are encoded in one
batched call and written back), the fingerprint and thread safety. Its
:meth:`~BaseEncoder.encode_with_tokens` gives the token-level view behind
:func:`latecore.explain`: each vector with its token and character span.
:class:`Encoder` runs a ``pylate`` ColBERT model; ``latecore.testing.FakeEncoder``
runs a deterministic hash model for fast tests.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import os
import re
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._quiet import quiet_load
from ._validation import DEFAULT_MODEL, check_positive, check_texts, resolve_model
from .cache import MultivectorCache, cache_key
from .checkpoint import CheckpointInfo, inspect_checkpoint
from .errors import LatecoreWarning, ModelLoadError, ZeroShotWarning
from .tokens import Span, TokenizedText

if TYPE_CHECKING:
    from pylate.models import ColBERT
    from typing_extensions import Self

__all__ = [
    "DEFAULT_MODEL",
    "BaseEncoder",
    "Encoder",
    "Role",
    "Span",
    "TokenizedText",
    "load_encoder",
    "progress_enabled",
]

logger = logging.getLogger(__name__)

FINGERPRINT_VERSION = 1

ZERO_SHOT_QUERY_LENGTH = 64
"""Query length of a zero-shot checkpoint (no expansion to train for): long questions are
kept whole. On an external collection of 225 long questions (all-MiniLM-L6-v2 zero-shot)
64 tokens raised MaxSim nDCG@10 from 0.375 to 0.381 against pylate's 32; the project's
own sets: ``benchmarks/eval_hybrid.py``."""

CHARS_PER_TOKEN_BOUND = 100
"""Upper bound on the characters one token covers (used to cut huge texts early)."""

Role = Literal["query", "document"]


def progress_enabled(show_progress: bool | None) -> bool:
    """``show_progress``, or when ``None`` whether ``$LATECORE_PROGRESS`` is not ``0``.

    The one rule for every progress bar latecore shows.

    Examples
    --------
    >>> progress_enabled(False)
    False
    """
    if show_progress is None:
        return os.environ.get("LATECORE_PROGRESS", "1") != "0"
    return show_progress


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Replace lone surrogates (which tokenizers cannot encode) with U+FFFD.

    The cleaned text is what is both encoded and used in the cache key.

    Examples
    --------
    >>> clean_text("ok") == "ok"
    True
    >>> clean_text("bad \\ud800 half")
    'bad \\ufffd half'
    >>> clean_text("\\ufffd\\ufffd\\ufffd \\udc00") == "\\ufffd\\ufffd\\ufffd \\ufffd"
    True
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


class BaseEncoder(ABC):
    """Shared machinery of every encoder; subclasses implement :meth:`_encode`.

    Parameters
    ----------
    cache
        Optional :class:`~latecore.cache.MultivectorCache` for document
        multivectors. With a cache, returned document arrays are rounded to the
        cache's storage dtype, so a hit and a miss return identical values.
    batch_size
        Texts per forward pass.
    show_progress
        Show a tqdm bar when encoding more than one batch; ``None`` follows the
        ``LATECORE_PROGRESS`` environment variable (on unless it is ``0``).
    """

    def __init__(
        self,
        *,
        cache: MultivectorCache | None = None,
        batch_size: int = 32,
        show_progress: bool | None = None,
    ) -> None:
        self._cache = cache
        self.batch_size = check_positive(batch_size, "batch_size")
        self.show_progress = progress_enabled(show_progress)
        self._model_lock = threading.RLock()

    @property
    def cache(self) -> MultivectorCache | None:
        """The document cache, if any (fixed at construction: it is part of the fingerprint)."""
        return self._cache

    def with_cache(self, cache: MultivectorCache | None) -> Self:
        """A copy of this encoder that shares its model but uses ``cache``.

        The copy has its own fingerprint (the storage dtype is part of it) and
        shares the model lock, so calls stay serialised across copies.
        """
        clone = copy.copy(self)
        clone._cache = cache
        clone.__dict__.pop("fingerprint", None)
        return clone

    @property
    def model_name(self) -> str:
        """A readable name of the model, for logs, events and ``repr``."""
        return type(self).__name__

    @property
    def storage_dtype(self) -> str:
        """Precision of returned document vectors: the cache's dtype, else float32."""
        return self._cache.dtype if self._cache is not None else "float32"

    @abstractmethod
    def _model_fingerprint_fields(self) -> dict[str, Any]:
        """Every model-side setting that can change the vectors."""

    @abstractmethod
    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        """Run the model on non-empty ``texts``; called with the model lock held."""

    @property
    def fingerprint_fields(self) -> dict[str, Any]:
        """What :attr:`fingerprint` is computed from."""
        fields = dict(self._model_fingerprint_fields())
        fields["storage_dtype"] = self.storage_dtype
        fields["fingerprint_version"] = FINGERPRINT_VERSION
        return fields

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of every setting that can change the vectors (see DESIGN §4).

        Two encoders that could produce different vectors never share a fingerprint.
        """
        canonical = json.dumps(self.fingerprint_fields, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()

    def _run_model(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        if not texts:
            return []
        with self._model_lock:
            arrays = self._encode(texts, is_query=is_query)
        return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Multivectors of queries, float32 ``(n_tokens, dim)`` each. Queries are not cached."""
        cleaned = [clean_text(t) for t in check_texts(texts, "encode_queries")]
        return self._run_model(cleaned, is_query=True)

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Multivectors of documents, float32 ``(n_tokens, dim)`` each, through the cache.

        Cache hits are not re-encoded; all misses (each distinct text once) are
        encoded in one batched model call and written back.
        """
        cleaned = [clean_text(t) for t in check_texts(texts, "encode_documents")]
        if self._cache is None:
            unique = list(dict.fromkeys(cleaned))
            encoded = dict(zip(unique, self._run_model(unique, is_query=False), strict=True))
            return [encoded[t] for t in cleaned]
        fingerprint = self.fingerprint
        keys = [cache_key(fingerprint, "document", t) for t in cleaned]
        stored = self._cache.get_many(keys)
        result: list[np.ndarray | None] = [
            None if a is None else a.astype(np.float32) for a in stored
        ]
        missing: dict[str, bytes] = {}
        for text, key, array in zip(cleaned, keys, result, strict=True):
            if array is None:
                missing.setdefault(text, key)
        if missing:
            fresh = self._run_model(list(missing), is_query=False)
            self._cache.put_many(list(missing.values()), fresh)
            rounded = {
                text: a.astype(self._cache.dtype).astype(np.float32)
                for text, a in zip(missing, fresh, strict=True)
            }
            result = [rounded[t] if a is None else a for t, a in zip(cleaned, result, strict=True)]
        return [a for a in result if a is not None]

    def model_text(self, text: str) -> str:
        """The exact string the model sees for ``text``: here, lone surrogates replaced.

        Offsets into it are offsets into ``text`` (the replacement keeps the length).
        """
        return clean_text(text)

    def token_spans(self, text: str, *, is_query: bool) -> list[tuple[str, Span | None]]:
        """Each of ``text``'s vectors as ``(token, (start, end) or None)``, in order.

        The hook behind the default :meth:`encode_with_tokens`: an encoder whose
        ``_encode`` returns one vector per token it can name implements this for a
        ``text`` already passed through :meth:`model_text`; a token without a span
        counts as special.

        Raises
        ------
        TypeError
            Unless a subclass implements it: this encoder cannot say which token each
            of its vectors stands for.
        """
        raise TypeError(
            f"{type(self).__name__} cannot say which token each of its vectors stands for: "
            "give it a token_spans(text, *, is_query) method returning one (token, (start, "
            "end) or None) per vector, or override _encode_with_tokens"
        )

    def encode_with_tokens(self, texts: Sequence[str], *, is_query: bool) -> list[TokenizedText]:
        """The token-level view of ``texts`` that MaxSim scores: vectors, tokens, spans, flags.

        Parameters
        ----------
        texts
            Queries (``is_query=True``) or documents.
        is_query
            Encode as queries (marker, query length, expansion) or as documents.

        Returns
        -------
        list of TokenizedText
            One per text. ``vectors`` are those :meth:`encode_queries` or
            :meth:`encode_documents` return for the text with this encoder's
            settings (document vectors rounded to :attr:`storage_dtype`, as a cached
            encoder returns them; the cache itself is neither read nor written).
            Spans are offsets into the text.

        Raises
        ------
        TypeError
            If the encoder cannot say which token each vector stands for (see
            :meth:`token_spans`).

        Examples
        --------
        >>> from latecore.testing import FakeEncoder
        >>> (doc,) = FakeEncoder(dim=8).encode_with_tokens(["Hi, you"], is_query=False)
        >>> doc.vectors.shape, doc.tokens
        ((4, 8), ('[D]', 'hi', ',', 'you'))
        >>> [doc.text[slice(*span)] for span in doc.spans if span is not None]
        ['Hi', ',', 'you']
        >>> doc.special
        (True, False, False, False)
        """
        cleaned = [self.model_text(t) for t in check_texts(texts, "encode_with_tokens")]
        if not cleaned:
            return []
        with self._model_lock:
            encoded = self._encode_with_tokens(cleaned, is_query=is_query)
        storage = np.dtype(self.storage_dtype)
        result = []
        for item in encoded:
            vectors = np.ascontiguousarray(item.vectors, dtype=np.float32)
            if not is_query and storage != np.float32:
                vectors = vectors.astype(storage).astype(np.float32)
            result.append(replace(item, vectors=vectors))
        return result

    def _encode_with_tokens(self, texts: list[str], *, is_query: bool) -> list[TokenizedText]:
        """:meth:`encode_with_tokens` of non-empty model texts; called with the model lock held.

        This default labels the vectors of :meth:`_encode` with :meth:`token_spans`.
        """
        labels = [self.token_spans(text, is_query=is_query) for text in texts]
        arrays = self._encode(texts, is_query=is_query)
        result = []
        for text, label, vectors in zip(texts, labels, arrays, strict=True):
            if len(label) != len(vectors):
                raise ValueError(
                    f"{type(self).__name__}.token_spans gave {len(label)} tokens for "
                    f"{len(vectors)} vectors; it must label every vector of the text"
                )
            result.append(
                TokenizedText(
                    text=text,
                    vectors=vectors,
                    tokens=tuple(token for token, _ in label),
                    spans=tuple(span for _, span in label),
                    special=tuple(span is None for _, span in label),
                    expansion=(False,) * len(label),
                )
            )
        return result

    async def aencode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`encode_queries` in a worker thread, so the event loop is not blocked."""
        return await asyncio.to_thread(self.encode_queries, texts)

    async def aencode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`encode_documents` in a worker thread, so the event loop is not blocked."""
        return await asyncio.to_thread(self.encode_documents, texts)


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
        Optional :class:`~latecore.cache.MultivectorCache` for documents.
    show_progress
        Progress bar for large batches (see :class:`BaseEncoder`).
    revision
        Hub revision (branch, tag or commit) when ``model`` is a Hub id.
    trust_remote_code
        Allow a checkpoint's own Python code to run (off by default).
    allow_unsafe_checkpoint
        Allow pickle-only weights and non-torch activations in Dense configs.
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
        cache: MultivectorCache | None = None,
        show_progress: bool | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        allow_unsafe_checkpoint: bool = False,
    ) -> None:
        super().__init__(cache=cache, batch_size=batch_size, show_progress=show_progress)
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
            device = "cuda" if torch.cuda.is_available() else "cpu"
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
            "storage_dtype": self.storage_dtype,
            "remote_code": self.trust_remote_code and self.info.needs_remote_code,
            "fingerprint": self.fingerprint,
        }

    def __repr__(self) -> str:
        return f"Encoder({self.info.model_id!r}, dim={self.dim}, zero_shot={self.zero_shot})"

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

    def token_spans(self, text: str, *, is_query: bool) -> list[tuple[str, Span | None]]:
        """Each of ``text``'s vectors as ``(token, (start, end) or None)``: runs the model.

        The tokens and spans of :meth:`encode_with_tokens`, which gives the vectors too.
        """
        (tokenized,) = self.encode_with_tokens([text], is_query=is_query)
        return list(zip(tokenized.tokens, tokenized.spans, strict=True))

    def _encode_with_tokens(self, texts: list[str], *, is_query: bool) -> list[TokenizedText]:
        if is_query:
            self._warn_truncated_queries(texts)
        model = self.model
        out: dict[str, Any] = model.encode(  # type: ignore[assignment]
            texts,
            is_query=is_query,
            batch_size=self.batch_size,
            output_value=None,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        tokenizer = model.tokenizer
        prefix_id = model.query_prefix_id if is_query else model.document_prefix_id
        special_ids = set(tokenizer.all_special_ids)
        if prefix_id is not None:
            special_ids.add(prefix_id)
        result = []
        for text, input_ids, mask, embeddings in zip(
            texts, out["input_ids"], out["masks"], out["token_embeddings"], strict=True
        ):
            ids = [int(i) for i in input_ids]
            spans, n_real = self._token_offsets(text, ids, is_query=is_query)
            tokens = tokenizer.convert_ids_to_tokens(ids)
            kept = np.flatnonzero(np.asarray(mask, dtype=bool)).tolist()
            result.append(
                TokenizedText(
                    text=text,
                    vectors=np.asarray(embeddings, dtype=np.float32)[kept],
                    tokens=tuple(tokens[p] for p in kept),
                    spans=tuple(spans[p] for p in kept),
                    special=tuple(p < n_real and ids[p] in special_ids for p in kept),
                    expansion=tuple(p >= n_real for p in kept),
                )
            )
        return result

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
        name = model.default_prompt_name
        prompt = (model.prompts.get(name) if name is not None else None) or ""
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
        show = self.show_progress and len(texts) > self.batch_size
        return list(
            self.model.encode(
                texts,
                is_query=is_query,
                batch_size=self.batch_size,
                show_progress_bar=show,
                convert_to_numpy=True,
            )
        )


def load_encoder(
    model: str | os.PathLike[str] | None = None,
    *,
    encoder: BaseEncoder | None = None,
    device: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    require_cache: bool = False,
) -> BaseEncoder:
    """The encoder a component should use: the one given, or a cached :class:`Encoder`.

    This is the one rule every adapter follows. A new :class:`Encoder` for
    ``model`` always gets a :class:`~latecore.cache.MultivectorCache` in
    ``cache_dir`` (default: :func:`~latecore.cache.default_cache_dir`). A given
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
        return Encoder(model, device=device, cache=MultivectorCache(cache_dir))
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
        return encoder.with_cache(MultivectorCache(cache_dir))
    return encoder
