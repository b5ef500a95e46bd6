"""pyinfra's operation order, computed without reading source files.

In CLI mode pyinfra orders each operation by the line numbers of the deploy code that called
it, taken from ``inspect.stack()`` (pyinfra/api/util.py, get_operation_order_from_stack).
``inspect.stack()`` also reads every frame's source line from disk, which nothing here uses:
6 ms per operation per host, a fifth of a no-change fleet deploy's CPU time, growing with
the number of hosts (docs/benchmarks.md, "Deploy timings"). ``install`` swaps in the same
computation over the frames themselves: same filenames, same line numbers, same order.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pyinfra
from pyinfra.api.util import PYINFRA_INSTALL_DIR

# The module, not the `operation` decorator that pyinfra.api exports under the same name.
_OPERATION_MODULE = importlib.import_module("pyinfra.api.operation")
_ORIGINAL = _OPERATION_MODULE.get_operation_order_from_stack


def operation_order(state: Any) -> list[int]:
    """What pyinfra's get_operation_order_from_stack returns, called from the same place."""
    frames = []
    frame = sys._getframe(1)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back  # type: ignore[assignment]
    frames.reverse()
    start = 0
    if state.current_deploy_filename:
        # pyinfra's loop ends on its own frame when the file is not on the stack: no lines.
        start = next((i for i, f in enumerate(frames) if f.f_code.co_filename == state.current_deploy_filename),
                     len(frames))
    line_numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    line_numbers += [f.f_lineno for f in frames[start:] if not f.f_code.co_filename.startswith(PYINFRA_INSTALL_DIR)]
    return line_numbers


def install() -> None:
    """Use operation_order for every operation from now on (idempotent)."""
    setattr(_OPERATION_MODULE, "get_operation_order_from_stack", operation_order)  # noqa: B010 - see above


def original() -> Any:
    """pyinfra's own function, for tests that compare the two."""
    return _ORIGINAL
