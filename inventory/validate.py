"""Inventory validation: the mistakes that would otherwise surface half-way through a deploy,
or worse, after it (a keystore on a transcoder, a transcoder pointing at no orchestrator).

deploys/fleet.py runs it before any operation is prepared; operators can run it alone:

    python -m inventory.validate inventory/prod.py

Every problem names the host and the fix. The rules work on a plain description of the
inventory (``HostSpec``), so they can be used and tested without pyinfra.
"""

from __future__ import annotations

import ipaddress
import os
import runpy
import stat
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pyinfra.api.exceptions import InventoryError

from roles.firewall import parse_network

ORCHESTRATORS = "orchestrators"
TRANSCODERS = "transcoders"
REWARD = "reward"
REDEEMERS = "redeemers"
MONITORING = "monitoring"
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


# --------------------------------------------------------------------------- rules


def _check_reward(hosts: list[HostSpec]) -> list[Problem]:
    reward = [h.name for h in hosts if h.in_group(REWARD)]
    if len(reward) == 1:
        return []
    if not reward:
        return [Problem(None, "no reward host: put exactly one host in the `reward` group "
                              "(it calls reward() once per round; a host may also be an orchestrator)")]
    return [Problem(None, f"{len(reward)} reward hosts ({', '.join(reward)}): keep exactly one in the "
                          "`reward` group; several would race to call reward() for the same round")]


def _check_keystores(hosts: list[HostSpec]) -> list[Problem]:
    problems = []
    for h in hosts:
        if not h.data.get("keystore_path"):
            continue
        if h.in_group(TRANSCODERS):
            problems.append(Problem(h.name, "keystore_path is set on a transcoder; transcoders never hold a "
                                            "keystore. Fix: remove keystore_path from this host's data (or "
                                            "from the group data it inherits it from)"))
        elif not (h.in_group(REWARD) or h.in_group(REDEEMERS)):
            problems.append(Problem(h.name, "keystore_path is set, but keystores only go to the reward and "
                                            "redeemer hosts. Fix: remove it, or add the host to `reward`/`redeemers`"))
    return problems


def _check_orchestrator_links(hosts: list[HostSpec]) -> list[Problem]:
    by_name = {h.name: h for h in hosts}
    orchestrators = sorted(h.name for h in hosts if h.in_group(ORCHESTRATORS))
    choices = ", ".join(orchestrators) or "none: the orchestrators group is empty"
    problems = []
    for h in hosts:
        if not h.in_group(TRANSCODERS) or h.in_group(ORCHESTRATORS):
            # An orchestrator that also transcodes does so in its own process.
            continue
        target = h.data.get("orchestrator")
        if not target:
            problems.append(Problem(h.name, f"transcoder without an orchestrator. Fix: set orchestrator = "
                                            f"\"<host>\" in its data (orchestrators: {choices})"))
        elif target not in orchestrators:
            problems.append(Problem(h.name, f"orchestrator {target!r} is not a host in the orchestrators group. "
                                            f"Fix: use one of: {choices}"))
        else:
            mine = _secret_source(h.data, "orch_secret")
            theirs = _secret_source(by_name[target].data, "orch_secret")
            if mine and theirs and mine != theirs:
                problems.append(Problem(h.name, f"its orchSecret comes from {mine[0]} {mine[1]}, its orchestrator "
                                                f"{target}'s from {theirs[0]} {theirs[1]}; they must share one secret. "
                                                "Fix: point both at the same orch_secret_file/orch_secret_env"))
    return problems


def _secret_source(data: Mapping[str, Any], key: str) -> tuple[str, str] | None:
    if data.get(f"{key}_file"):
        return ("file", str(Path(str(data[f"{key}_file"])).expanduser()))
    if data.get(f"{key}_env"):
        return ("environment variable", str(data[f"{key}_env"]))
    return None


def _check_secret_file(host: str, path_value: str, key: str, what: str) -> list[Problem]:
    path = Path(path_value).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        return [Problem(host, f"{what} file {path} ({key}) does not exist on this machine. Fix: create it "
                              f"(install -m 600 /dev/null {path}, then write the secret into it) or fix the path")]
    except OSError as exc:
        return [Problem(host, f"{what} file {path} ({key}) cannot be read: {exc.strerror}")]
    if not stat.S_ISREG(st.st_mode):
        return [Problem(host, f"{what} file {path} ({key}) is not a regular file")]
    if st.st_mode & 0o077:
        return [Problem(host, f"{what} file {path} ({key}) is open to group/others (mode "
                              f"{stat.S_IMODE(st.st_mode):04o}). Fix: chmod 600 {path}")]
    if st.st_size == 0:
        return [Problem(host, f"{what} file {path} ({key}) is empty. Fix: write the secret into it")]
    return []


def _check_secret(h: HostSpec, key: str, what: str, environ: Mapping[str, str], required: bool) -> list[Problem]:
    source = _secret_source(h.data, key)
    if source is None:
        if not required:
            return []
        return [Problem(h.name, f"no {what}: set {key}_file (a path on this machine) or {key}_env (the name of "
                                "an environment variable holding it) in the inventory data; never the value")]
    kind, name = source
    if kind == "file":
        return _check_secret_file(h.name, name, f"{key}_file", what)
    if not environ.get(name):
        return [Problem(h.name, f"{what}: environment variable {name} ({key}_env) is not set or empty. "
                                f"Fix: export {name}=... in the shell you deploy from (or set {key}_file)")]
    return []


def _check_secrets(hosts: list[HostSpec], environ: Mapping[str, str]) -> list[Problem]:
    problems = []
    for h in hosts:
        if h.in_group(ORCHESTRATORS) or h.in_group(TRANSCODERS):
            for key, what in NODE_SECRETS:
                problems += _check_secret(h, key, what, environ, required=True)
        holds_keystore = h.in_group(REWARD) or h.in_group(REDEEMERS)
        if h.data.get("keystore_path") and holds_keystore and not h.in_group(TRANSCODERS):
            problems += _check_secret_file(h.name, str(h.data["keystore_path"]), "keystore_path", "keystore")
            problems += _check_secret(h, "keystore_password", "keystore password", environ, required=False)
    return problems


def _check_duplicate_addresses(hosts: list[HostSpec]) -> list[Problem]:
    seen: dict[str, list[str]] = defaultdict(list)
    for h in hosts:
        seen[h.ssh_address].append(h.name)
    return [
        Problem(names[1], f"has the same address ({address}) as {', '.join(names[:1] + names[2:])}. "
                          "Fix: give each host its own ssh_hostname (one host with several roles "
                          "is one entry in several groups)")
        for address, names in seen.items() if len(names) > 1
    ]


def _check_networks(hosts: list[HostSpec]) -> list[Problem]:
    problems = []
    for h in hosts:
        networks = h.data.get("admin_networks")
        if not networks:
            problems.append(Problem(h.name, "admin_networks is empty: the firewall would refuse every SSH login. "
                                            "Fix: set admin_networks (the addresses/CIDRs you deploy and log in "
                                            "from) in inventory/group_data/all.py"))
            continue
        for value in networks if not isinstance(networks, str) else [networks]:
            try:
                parse_network(value, "admin_networks")
            except ValueError as exc:
                problems.append(Problem(h.name, str(exc)))
        if h.in_group(MONITORING):
            try:
                ipaddress.ip_address(h.address)
            except ValueError:
                problems.append(Problem(h.name, f"monitoring host address {h.address!r} is not an IP address; the "
                                                "other hosts' firewalls admit it by address. Fix: set address = "
                                                "\"<its IP>\" in its data"))
    return problems


RULES = (
    _check_reward,
    _check_keystores,
    _check_orchestrator_links,
    _check_duplicate_addresses,
    _check_networks,
)


def validate(hosts: Iterable[HostSpec], environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Every problem in the inventory, each naming the host and the fix; empty when all is well."""
    hosts = list(hosts)
    environ = os.environ if environ is None else environ
    problems = []
    for rule in RULES:
        problems += rule(hosts)
    problems += _check_secrets(hosts, environ)
    # Imported here: it builds on this module's HostSpec, Problem and secret checks.
    from inventory.validate_monitoring import check_monitoring

    problems += check_monitoring(hosts, environ)
    return problems


def check(hosts: Iterable[HostSpec], environ: Mapping[str, str] | None = None) -> None:
    """Raise InventoryValidationError listing every problem, if there is any."""
    problems = validate(hosts, environ)
    if problems:
        raise InventoryValidationError(problems)


def check_pyinfra_inventory(inventory) -> None:
    """``check`` for pyinfra's inventory, once per run (the deploy file runs once per host)."""
    # pyinfra hands deploy files a context proxy; the mark goes on the inventory behind it.
    real = inventory._get_module() if hasattr(inventory, "_get_module") else inventory
    if getattr(real, "_lpfleet_validated", False):
        return
    check(from_pyinfra(real))
    real._lpfleet_validated = True


def _public_values(namespace: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in namespace.items()
            if not k.startswith("__") and not isinstance(v, (ModuleType, type)) and not callable(v)}


def load(inventory_file: str) -> list[HostSpec]:
    """HostSpecs from an inventory file and the group_data/ beside it, merged the way the
    pyinfra CLI merges them (including the group named after the file, e.g. ``prod``).

    Read without pyinfra's CLI, which monkey-patches the whole process for gevent on import.
    """
    path = Path(inventory_file)
    groups: dict[str, list] = {
        name: list(value) for name, value in _public_values(runpy.run_path(str(path))).items()
        if not name.startswith("_") and isinstance(value, (list, tuple))
    }
    everyone = list(dict.fromkeys(m if isinstance(m, str) else m[0] for members in groups.values() for m in members))
    groups.setdefault(path.stem, everyone)
    group_data = {
        data_file.stem: _public_values(runpy.run_path(str(data_file)))
        for data_file in sorted((path.parent / "group_data").glob("*.py"))
    }
    return describe(groups, group_data)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m inventory.validate INVENTORY.py", file=sys.stderr)
        return 2
    problems = validate(load(args[0]))
    for problem in problems:
        print(f"- {problem}", file=sys.stderr)
    if problems:
        print(f"{args[0]}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args[0]}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
