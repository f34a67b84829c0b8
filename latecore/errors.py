"""Exceptions and warnings raised by latecore.

Every exception latecore raises on purpose derives from :class:`LatecoreError`,
and also from the built-in type a caller would naturally catch, so that
``except ValueError`` keeps working for bad arguments::

    LatecoreError(Exception)
    ├── ModelLoadError(LatecoreError, OSError)
    │       a checkpoint cannot be found, fetched, or is refused as unsafe
    ├── FingerprintMismatchError(LatecoreError, ValueError)
    │       a saved index was built by an encoder that produces different vectors
    ├── IndexFormatError(LatecoreError, ValueError)
    │   │   a saved index directory is missing files, is damaged or has an unknown format
    │   └── IndexChangedError
    │           another process saved over the index while it was being loaded:
    │           loading it again reads the new save
    ├── EngineOwnershipError(LatecoreError, ValueError)
    │       an engine table belongs to another index (a copy, or another index)
    └── InputError(LatecoreError, ValueError)
            documents cannot be read from a path: missing, unsupported type,
            not UTF-8, or a malformed JSON-lines record

    LatecoreWarning(UserWarning)
    └── ZeroShotWarning
            a plain encoder was loaded as an untrained (zero-shot) ColBERT

A damaged or tampered cache entry is never an exception: it is a cache miss,
recomputed and replaced.
"""

from __future__ import annotations

__all__ = [
    "EngineOwnershipError",
    "FingerprintMismatchError",
    "IndexChangedError",
    "IndexFormatError",
    "InputError",
    "LatecoreError",
    "LatecoreWarning",
    "ModelLoadError",
    "ZeroShotWarning",
]


class LatecoreError(Exception):
    """Base class of every exception latecore raises on purpose."""


class ModelLoadError(LatecoreError, OSError):
    """A model checkpoint could not be loaded, or was refused as unsafe."""


class FingerprintMismatchError(LatecoreError, ValueError):
    """An index was saved under an encoder fingerprint other than the current one."""


class IndexFormatError(LatecoreError, ValueError):
    """A saved index directory is incomplete or in an unknown format."""


class EngineOwnershipError(LatecoreError, ValueError):
    """An engine table (Qdrant collection, LanceDB table) is owned by another index."""


class IndexChangedError(IndexFormatError):
    """The saved index was replaced by another save while it was being loaded: load it again."""


class InputError(LatecoreError, ValueError):
    """Documents cannot be read from a path given to :func:`~latecore.documents.load_documents`."""


class LatecoreWarning(UserWarning):
    """Base class of latecore's warnings."""


class ZeroShotWarning(LatecoreWarning):
    """A checkpoint without a ColBERT head was loaded as a zero-shot ColBERT."""
