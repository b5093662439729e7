"""One-line errors for bundle runs (`python -m monai.bundle run`).

MONAI's ConfigParser wraps every error of a config item in ``RuntimeError("Failed to instantiate
...")`` / ``("Failed to evaluate ...")``, so the last line of the traceback names the config item,
not the problem. :func:`install_short_errors` (the first ``initialize`` item of the bundles) sets a
``sys.excepthook`` that, when the innermost cause of an uncaught exception is one of this package's
input checks (a ValueError or OSError raised in ``monai_genesis``), prints only that message:
``genesis_pretrain: error: <file>: <problem>; <fix>``. Any other exception prints in full, as does
every exception with ``GENESIS_DEBUG=1``.

Errors raised while an engine runs are also logged before they reach the hook: MONAI's ``StatsHandler``
logs them with their traceback and ignite logs "Engine run is terminating due to exception". The hook's
log filter shortens those ERROR records while one of our input checks propagates, from the handlers that
exist when it is installed (the bundle's logging.conf, MONAI's StatsHandler logger, which it makes
first) and Python's last-resort handler: the first such record becomes the one line (so a server that
catches the error, e.g. MONAI Label, still logs what went wrong), later ones are dropped. What remains:
MONAI's own notices before the run (e.g. the config-trust warning), and loggers with their own handlers
made after ``initialize`` starts.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["install_short_errors", "input_error_of"]

STATS_LOGGER = "monai.handlers.StatsHandler"  # the default logger name of MONAI's StatsHandler (monai 1.5.2 and 1.6)


def input_error_of(error: BaseException) -> BaseException | None:
    """The innermost cause of ``error`` when it is an input check of this package (else None)."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        # `raise ... from None` hides the context it replaces: stop at the message written for the user
        inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if inner is None:
            break
        error = inner
    if not isinstance(error, (ValueError, OSError)):
        return None
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    raised_here = tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("monai_genesis.")
    return error if raised_here else None


def install_short_errors(name: str = "genesis") -> bool:
    """Print uncaught input errors of this package as one line ``<name>: error: ...``; True when installed."""
    if os.environ.get("GENESIS_DEBUG"):
        return False
    previous = sys.excepthook
    if getattr(previous, "genesis_short_errors", False):
        return True

    def hook(kind, value, traceback):
        error = input_error_of(value)
        if error is None:
            previous(kind, value, traceback)
        else:
            print(f"{name}: error: {_one_line(error)} (GENESIS_DEBUG=1 shows the traceback)",
                  file=sys.stderr)

    hook.genesis_short_errors = True
    sys.excepthook = hook
    shorten = _InputErrorLogFilter(name)
    from monai.apps import get_logger

    get_logger(STATS_LOGGER)  # made now as MONAI's StatsHandler makes it (own stdout handler), so the filter reaches it
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for handler in {h for lg in loggers for h in lg.handlers} | ({logging.lastResort} - {None}):
        if not any(isinstance(f, _InputErrorLogFilter) for f in handler.filters):
            handler.addFilter(shorten)
    return True


class _InputErrorLogFilter(logging.Filter):
    """ERROR records about an input error of this package become one line ``<name>: error: <message>`` the first
    time (a server that catches the error keeps that line in its log), and are dropped after that."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.label = name
        self.last: BaseException | None = None  # the error whose first record was shortened

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or getattr(record, "genesis_short", False):
            return True  # (a shortened record reaching a second handler is kept)
        error = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        error = None if error is None else input_error_of(error)
        if error is None:
            return True
        if error is self.last:
            return False
        self.last = error
        record.msg, record.args, record.exc_info, record.exc_text = f"{self.label}: error: {_one_line(error)}", None, None, None
        record.genesis_short = True
        return True


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
