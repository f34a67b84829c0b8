"""Quiet model loads: the libraries' per-load chatter goes to latecore's log at DEBUG.

Every load of a checkpoint through pylate prints transformers' "LOAD REPORT"
table (unexpected keys such as MiniLM's ``position_ids``) and, for a plain
checkpoint, pylate's note that it has no sentence-transformers config.
:func:`quiet_load` passes those on at DEBUG for the loading thread only, for the
duration of the load; a report of missing or mismatched weights (weights drawn
at random) is still shown. Nothing global outlives the load.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator

__all__ = ["quiet_load"]

logger = logging.getLogger("latecore.encoder")

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

_WEIGHT_PROBLEMS = ("MISSING", "MISMATCH", "CONVERSION")
"""Words of a transformers load report that mean weights were initialised, not loaded."""


def _is_load_chatter(record: logging.LogRecord) -> bool:
    """A harmless message that every load of a checkpoint prints.

    transformers' "LOAD REPORT" table when it lists only unexpected keys (weights
    in the file that the model does not use, such as MiniLM's ``position_ids``),
    and pylate's note that a checkpoint has no sentence-transformers config. A
    report of missing or mismatched keys (weights drawn at random) is not chatter.
    """
    message = record.getMessage()
    if record.name == "transformers.modeling_utils":
        return "LOAD REPORT" in message and not any(w in message for w in _WEIGHT_PROBLEMS)
    return record.name == "pylate.models.colbert" and message.startswith(
        "No sentence-transformers model found"
    )


class _LoadChatterToDebug(logging.Filter):
    """Passes one thread's load chatter on to latecore's log at DEBUG instead of showing it."""

    LOGGERS = ("transformers.modeling_utils", "pylate.models.colbert")

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread or not _is_load_chatter(record):
            return True
        logger.debug("%s: %s", record.name, _ANSI_ESCAPE.sub("", record.getMessage()))
        return False


class _HiddenLoadBars:
    """Hides transformers' "Loading weights" bars while any load that asks for it runs.

    The switch is global in transformers, so concurrent loads count in and out:
    the first one in turns the bars off if they were on, the last one out turns
    them back on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loads = 0
        self._restore = False
        self._hub_was_off = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        from huggingface_hub import utils as hub_utils
        from transformers.utils import logging as transformers_logging

        with self._lock:
            if self._loads == 0:
                self._restore = transformers_logging.is_progress_bar_enabled()
                self._hub_was_off = hub_utils.are_progress_bars_disabled()
                if self._restore:
                    transformers_logging.disable_progress_bar()
            self._loads += 1
        try:
            yield
        finally:
            with self._lock:
                self._loads -= 1
                if self._loads == 0 and self._restore:
                    transformers_logging.enable_progress_bar()  # also huggingface_hub's
                    if self._hub_was_off:
                        hub_utils.disable_progress_bars()


_hidden_load_bars = _HiddenLoadBars()


@contextlib.contextmanager
def quiet_load(show_progress: bool) -> Iterator[None]:
    """Quiet the libraries under a model load in this thread; nothing global outlives it.

    Load chatter (see :func:`_is_load_chatter`) goes to latecore's log at DEBUG;
    other messages, other threads' and a report of missing weights pass as before.
    Without ``show_progress`` transformers' weight-loading bar is hidden too.
    """
    chatter = _LoadChatterToDebug()
    loggers = [logging.getLogger(name) for name in chatter.LOGGERS]
    for each in loggers:
        each.addFilter(chatter)
    try:
        with contextlib.nullcontext() if show_progress else _hidden_load_bars():
            yield
    finally:
        for each in loggers:
            each.removeFilter(chatter)
