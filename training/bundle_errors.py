"""One-line errors for bundle runs (`python -m monai.bundle run`).

MONAI's ConfigParser wraps every error of a config item in ``RuntimeError("Failed to instantiate
...")`` / ``("Failed to evaluate ...")``, so the last line of the traceback names the config item,
not the problem. :func:`install_short_errors` (the first ``initialize`` item of the bundles) sets a
``sys.excepthook`` that, when the innermost cause of an uncaught exception is one of this package's
input checks (a ValueError or OSError raised in ``monai_genesis``), prints only that message:
``genesis_pretrain: error: <file>: <problem>; <fix>``. Any other exception prints in full, as does
every exception with ``GENESIS_DEBUG=1``. What remains: errors raised while the trainer runs are
also logged, with their traceback, by MONAI's ``StatsHandler`` and ignite before the hook runs.
"""

from __future__ import annotations

import os
import sys

__all__ = ["install_short_errors", "input_error_of"]


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
            print(f"{name}: error: {' '.join(str(error).split())} (GENESIS_DEBUG=1 shows the traceback)",
                  file=sys.stderr)

    hook.genesis_short_errors = True
    sys.excepthook = hook
    return True
