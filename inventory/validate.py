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
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from inventory.hosts import (
    GPU,
    LOAD_BALANCERS,
    MONITORING,
    NODE_SECRETS,
    ORCHESTRATORS,
    REDEEMERS,
    REWARD,
    TRANSCODERS,
    HostSpec,
    InventoryValidationError,
    Problem,
    describe,
    from_pyinfra,
    spec_of,
)
from inventory.secret_checks import check_secret, check_secret_file, secret_source
from inventory.validate_monitoring import check_monitoring
from roles.firewall import parse_network
from roles.settings import RoleSettings, all_models

__all__ = ["GPU", "LOAD_BALANCERS", "MONITORING", "ORCHESTRATORS", "REDEEMERS", "REWARD", "TRANSCODERS", "HostSpec",
           "InventoryValidationError", "Problem", "check", "check_pyinfra_inventory", "describe",
           "from_pyinfra", "load", "spec_of", "validate"]


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


def on_chain_orchestrator(h: HostSpec) -> bool:
    return h.in_group(ORCHESTRATORS) and str(h.data.get("lpnode_network", "offchain")) != "offchain"


def _check_keystores(hosts: list[HostSpec]) -> list[Problem]:
    """Chain material (keystores, RPC URL) on exactly the hosts whose role needs it."""
    problems = []
    for h in hosts:
        url = secret_source(h.data, "eth_url")
        remote_transcoder = h.in_group(TRANSCODERS) and not h.in_group(ORCHESTRATORS)
        if url and (remote_transcoder or not (h.in_group(REWARD) or h.in_group(REDEEMERS)
                                              or on_chain_orchestrator(h))):
            problems.append(Problem(h.name, "eth_url_file/eth_url_env is set, but the RPC URL (it often carries "
                                            "the provider's API key) only goes to the reward and redeemer hosts "
                                            "and on-chain orchestrators, never to a transcoder. Fix: remove it "
                                            "from this host's data (or from the group data it inherits it from)"))
        if h.data.get("hot_keystore_path") and not on_chain_orchestrator(h):
            problems.append(Problem(h.name, "hot_keystore_path is set, but a hot keystore only goes to an on-chain "
                                            "orchestrator (lpnode_network other than offchain). Fix: remove it"))
        if not h.data.get("keystore_path"):
            if h.in_group(REWARD) and not h.in_group(TRANSCODERS):
                problems.append(Problem(h.name, "the reward host has no keystore_path: the reward service signs "
                                                "with it. Fix: set keystore_path to the orchestrator's keystore "
                                                "file on this machine (or its reward caller's, with "
                                                "reward_orch_addr; docs/on-chain.md)"))
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
            mine = secret_source(h.data, "orch_secret")
            theirs = secret_source(by_name[target].data, "orch_secret")
            if mine and theirs and mine != theirs:
                problems.append(Problem(h.name, f"its orchSecret comes from {mine[0]} {mine[1]}, its orchestrator "
                                                f"{target}'s from {theirs[0]} {theirs[1]}; they must share one secret. "
                                                "Fix: point both at the same orch_secret_file/orch_secret_env"))
    return problems


def _check_secrets(hosts: list[HostSpec], environ: Mapping[str, str]) -> list[Problem]:
    problems = []
    for h in hosts:
        if h.in_group(ORCHESTRATORS) or h.in_group(TRANSCODERS):
            for key, what in NODE_SECRETS:
                problems += check_secret(h, key, what, environ, required=True)
        holds_keystore = h.in_group(REWARD) or h.in_group(REDEEMERS)
        if h.data.get("keystore_path") and holds_keystore and not h.in_group(TRANSCODERS):
            problems += check_secret_file(h.name, str(h.data["keystore_path"]), "keystore_path", "keystore")
            # The reward service unlocks its key unattended, at every start.
            problems += check_secret(h, "keystore_password", "keystore password", environ,
                                     required=h.in_group(REWARD))
        if h.in_group(REWARD) and not h.in_group(TRANSCODERS):
            problems += check_secret(h, "eth_url", "RPC URL (the chain's JSON-RPC endpoint)", environ, required=True)
        if h.in_group(REDEEMERS):
            if not h.data.get("keystore_path"):
                problems.append(Problem(h.name, "a redeemer has no keystore_path: it redeems with its own account, "
                                                "which pays the gas. Fix: set keystore_path (and its password)"))
            else:
                problems += check_secret(h, "keystore_password", "keystore password", environ, required=True)
            problems += check_secret(h, "eth_url", "RPC URL (the chain's JSON-RPC endpoint)", environ, required=True)
            problems += check_secret(h, "redeem_token", "redeemer token (shared with the orchestrators)", environ,
                                     required=True)
        if on_chain_orchestrator(h):
            if not h.data.get("hot_keystore_path"):
                problems.append(Problem(h.name, "an on-chain orchestrator has no hot_keystore_path: its own key "
                                                "signs ticket redemptions (set lpnode_eth_orch_addr to the registered "
                                                "address it works for). Fix: set hot_keystore_path"))
            else:
                problems += check_secret_file(h.name, str(h.data["hot_keystore_path"]), "hot_keystore_path",
                                              "hot keystore")
                problems += check_secret(h, "hot_keystore_password", "hot keystore password", environ, required=True)
            problems += check_secret(h, "eth_url", "RPC URL (the chain's JSON-RPC endpoint)", environ, required=True)
            if any(r.in_group(REDEEMERS) for r in hosts):
                problems += check_secret(h, "redeem_token", "redeemer token (shared with the redeemers)", environ,
                                         required=True)
    return problems


def _check_load_balancers(hosts: list[HostSpec], environ: Mapping[str, str]) -> list[Problem]:
    """Balancers need orchestrators behind them, and those share one auth-token key."""
    balancers = [h for h in hosts if h.in_group(LOAD_BALANCERS)]
    if not balancers:
        return []
    orchestrators = [h for h in hosts if h.in_group(ORCHESTRATORS)]
    problems = []
    if not orchestrators:
        problems.append(Problem(None, "the load_balancers group has hosts but the orchestrators group is empty: "
                                      "a balancer passes gateways through to the orchestrators. Fix: add them"))
    for h in balancers:
        if h.in_group(ORCHESTRATORS) or h.in_group(TRANSCODERS):
            problems.append(Problem(h.name, "a load balancer takes the orchestrators' port 8935 itself, so it cannot "
                                            "also run lpnode. Fix: give the balancer its own host"))
        problems += _ip_address(h, "load balancer", "the orchestrators' firewalls admit its health checks by address")
    sources = set()
    for h in orchestrators:
        problems += check_secret(h, "auth_key", "auth-token key (shared by the orchestrators behind the balancer, "
                                 "so a gateway moved to another keeps its session; e.g. openssl rand -hex 32)",
                                 environ, required=True)
        if source := secret_source(h.data, "auth_key"):
            sources.add(source)
    if len(sources) > 1:
        problems.append(Problem(None, "the orchestrators behind the load balancer read their auth-token key from "
                                      f"{len(sources)} different sources; a gateway moved from one to another would "
                                      "lose its session. Fix: point every orchestrator at the same auth_key_file "
                                      "(or auth_key_env)"))
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
            problems += _ip_address(h, "monitoring host", "the other hosts' firewalls admit it by address")
    return problems


def _ip_address(h: HostSpec, what: str, why: str) -> list[Problem]:
    """A host other hosts' firewalls admit by address must have an IP address as its address."""
    try:
        ipaddress.ip_address(h.address)
        return []
    except ValueError:
        return [Problem(h.name, f"{what} address {h.address!r} is not an IP address; {why}. Fix: set "
                                "address = \"<its IP>\" in its data")]


def _runs(model: type[RoleSettings], h: HostSpec) -> bool:
    """Whether deploys/fleet.py runs the model's role on ``h`` (so its required settings must be set)."""
    groups = {
        "lpnode": h.in_group(ORCHESTRATORS) or h.in_group(TRANSCODERS),
        "reward": h.in_group(REWARD),
        "nvidia": h.has_gpu,
        "prometheus": h.in_group(MONITORING),
        "alertmanager": h.in_group(MONITORING),
        "grafana": h.runs_grafana,
        "haproxy": h.in_group(LOAD_BALANCERS),
    }
    return groups.get(model.ROLE, True)


def _check_role_settings(hosts: list[HostSpec]) -> list[Problem]:
    """Every role's settings (roles/settings.py): unknown keys under its prefix, types, checks;
    required ones where the role runs."""
    return [Problem(h.name, problem) for h in hosts for model in all_models()
            for problem in model.problems(h.data, required=_runs(model, h))]


RULES = (
    _check_role_settings,
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
    problems += _check_load_balancers(hosts, environ)
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
