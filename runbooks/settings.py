"""What runbooks read from the inventory (``runbook_<field>``), declared once like a role's
settings: validated with the inventory and listed in docs/operators-guide.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from roles.settings import RoleSettings, at_least, setting


def _flags(value: object) -> str | None:
    return None if isinstance(value, list) and all(isinstance(v, str) for v in value) else \
        "must be a list of strings (test-stream flags and their values)"


@dataclass(frozen=True)
class RunbookSettings(RoleSettings):
    """The runbooks' settings: inventory data ``runbook_<field>`` (group_data/all.py)."""

    PREFIX: ClassVar[str] = "runbook_"
    ROLE: ClassVar[str] = "runbook"

    stream_flags: list[str] = setting(factory=list, check=_flags,
                                      doc="extra `lpnode test-stream` flags for the short stream that verifies each "
                                          "host a runbook changed; on chain, the paying gateway's "
                                          "`-ethKeystorePath` and `-ethPassword` (paths on the operator's machine)")
    stream_segments: int = setting(3, check=at_least(1),
                                   doc="segments in that stream; every one must come back good")
    drain_timeout: int = setting(120, check=at_least(1),
                                 doc="seconds a drain may take (work in flight reaching zero) before the run "
                                     "stops")
    return_timeout: int = setting(180, check=at_least(1),
                                  doc="seconds a restarted node may take to come back (registered with its "
                                      "capacity, in rotation) before the run stops")
