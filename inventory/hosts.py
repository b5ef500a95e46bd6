"""The inventory as the checks see it: each host's name, groups and merged data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api.exceptions import InventoryError

ORCHESTRATORS = "orchestrators"
TRANSCODERS = "transcoders"
REWARD = "reward"
REDEEMERS = "redeemers"
MONITORING = "monitoring"
LOAD_BALANCERS = "load_balancers"
GPU = "gpu"

# (data key prefix, what it is) for the secrets every orchestrator and transcoder needs.
NODE_SECRETS = (("orch_secret", "orchSecret"), ("admin_token", "admin token"))


@dataclass(frozen=True)
class HostSpec:
    """One host as the inventory describes it: its name, groups and merged data."""

    name: str
    groups: frozenset[str] = frozenset()
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ssh_address(self) -> str:
        return str(self.data.get("ssh_hostname") or self.name)

    @property
    def address(self) -> str:
        """The address other fleet hosts use for this one (``address``, else ``ssh_hostname``)."""
        return str(self.data.get("address") or self.ssh_address)

    def in_group(self, group: str) -> bool:
        return group in self.groups

    @property
    def has_gpu(self) -> bool:
        """In the `gpu` group, or `nvidia = True` in its data: the nvidia role runs here."""
        return self.in_group(GPU) or bool(self.data.get("nvidia"))

    @property
    def runs_grafana(self) -> bool:
        """A monitoring host with `grafana = True`."""
        return self.in_group(MONITORING) and bool(self.data.get("grafana"))


@dataclass(frozen=True)
class Problem:
    host: str | None  # None: the inventory as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.host}: {self.message}" if self.host else self.message


class InventoryValidationError(InventoryError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the inventory has {len(problems)} problem(s); no host was changed:\n{lines}")


def describe(
    groups: Mapping[str, Iterable[str | tuple[str, Mapping[str, Any]]]],
    group_data: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[HostSpec]:
    """HostSpecs from pyinfra-style groups (``{"orchestrators": [("o1", {...}), "o2"]}``) and
    group data (``{"all": {...}, "transcoders": {...}}``), merged as pyinfra merges them:
    all, then each group in order, then the host's own data."""
    group_data = group_data or {}
    names: list[str] = []
    memberships: dict[str, list[str]] = defaultdict(list)
    host_data: dict[str, dict[str, Any]] = defaultdict(dict)
    for group, members in groups.items():
        for member in members:
            name, data = (member, {}) if isinstance(member, str) else member
            if name not in names:
                names.append(name)
            memberships[name].append(group)
            host_data[name].update(data)
    specs = []
    for name in names:
        merged: dict[str, Any] = dict(group_data.get("all", {}))
        for group in memberships[name]:
            merged.update(group_data.get(group, {}))
        merged.update(host_data[name])
        specs.append(HostSpec(name, frozenset(memberships[name]), merged))
    return specs


def spec_of(host) -> HostSpec:
    """The HostSpec of a pyinfra ``Host`` (its data already merged by pyinfra)."""
    return HostSpec(host.name, frozenset(host.groups), host.data.dict())


def from_pyinfra(inventory) -> list[HostSpec]:
    """HostSpecs from a pyinfra ``Inventory``."""
    return [spec_of(h) for h in inventory]
