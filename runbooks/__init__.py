"""The on-call runbooks, one module each, run by `lpfleet runbook NAME -i INVENTORY`. Each
module has NAME, SUMMARY (one line for `lpfleet runbook list`), ``arguments(parser)`` for its
own options and ``plan(run, limit, args)``, which returns the Plan the engine shows, confirms
and runs (lpfleet/runbook.py). Each has its page for the on-call reader beside it (NAME.md)."""

from __future__ import annotations

from types import ModuleType

from runbooks import (
    add_worker,
    distribute_keystore,
    drain,
    remove_worker,
    rolling_update,
    rotate_orch_secret,
    undrain,
)

RUNBOOKS: dict[str, ModuleType] = {m.NAME: m for m in (rolling_update, rotate_orch_secret, distribute_keystore,
                                                        add_worker, remove_worker, drain, undrain)}
