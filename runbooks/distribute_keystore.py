"""distribute-keystore: put each keystore and its password file on exactly the hosts whose role
needs it (the reward host and redeemers: keystore_path; on-chain orchestrators: their own
hot_keystore_path), 0400 for the service user, through the fleet deploy over SSH; then scan
every host and prove no other keystore is anywhere, removing the ones left on hosts that left
the role. runbooks/distribute-keystore.md."""

from __future__ import annotations

import argparse
import hashlib
import json
from functools import partial
from pathlib import Path

from inventory.hosts import REDEEMERS, REWARD, HostSpec
from inventory.validate import on_chain_orchestrator
from lpfleet.remote import RemoteError, quote
from lpfleet.runbook import Plan, Step, StepFailed, Wave
from roles.common import CommonSettings
from roles.secrets import HOT_KEYSTORE_DIR, HOT_KEYSTORE_FILE, KEYSTORE_DIR, KEYSTORE_FILE
from runbooks._steps import Run, rewarded_this_round

NAME = "distribute-keystore"
SUMMARY = "keystores on exactly the hosts whose role needs them, proven by a scan of every host"

# Runs on each host: every geth keystore (JSON with "crypto" and "address") under the places a
# key could be left, with its sha256; the content never leaves the host.
_SCAN = """
import hashlib, json, os, sys
found = []
for top in ("/etc", "/var/lib", "/var/backups", "/root", "/home", "/opt", "/srv", "/tmp", "/var/tmp", "/usr/local"):
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for name in files:
            path = os.path.join(root, name)
            try:
                if os.path.islink(path) or os.path.getsize(path) > 65536:
                    continue
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if not data.lstrip()[:1] == b"{":
                continue
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            if isinstance(doc, dict) and ("crypto" in doc or "Crypto" in doc) and "address" in doc:
                found.append({"path": path, "sha256": hashlib.sha256(data).hexdigest()})
print(json.dumps(found))
"""


def expected(h: HostSpec) -> dict[str, Path]:
    """Where this host's role puts keystores, and the file on the operator's machine for each."""
    want = {}
    if (h.in_group(REWARD) or h.in_group(REDEEMERS)) and h.data.get("keystore_path"):
        want[KEYSTORE_FILE] = Path(str(h.data["keystore_path"])).expanduser()
    if on_chain_orchestrator(h) and h.data.get("hot_keystore_path"):
        want[HOT_KEYSTORE_FILE] = Path(str(h.data["hot_keystore_path"])).expanduser()
    return want


def scan(run: Run, name: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = json.loads(run.fleet.run(name, f"python3 -c {quote(_SCAN)}").stdout)
    return found


def put(run: Run, h: HostSpec) -> str:
    want = expected(h)
    deployed = run.fleet.deploy([h.name], run.log)
    user = CommonSettings.from_data(h.name, h.data).service_user
    seen = []
    for remote, local in want.items():
        digest = hashlib.sha256(local.read_bytes()).hexdigest()
        stat = run.fleet.run(h.name, f"stat -c '%a %U' {quote(remote)} {quote(str(Path(remote).parent / 'password'))} "
                                     f"&& sha256sum {quote(remote)}").stdout.split()
        modes, have = stat[:4], stat[4]
        if have != digest:
            raise StepFailed(f"{h.name}: {remote} is not the inventory's {local} after the deploy")
        if modes != ["400", user, "400", user]:
            raise StepFailed(f"{h.name}: {remote} and its password are {' '.join(modes)}; want 400 {user}")
        seen.append(remote)
    return f"{deployed}; {', '.join(seen)} in place (0400 {user}, content matches)"


def prove_none_other(run: Run, h: HostSpec) -> str:
    want = set(expected(h))
    found = scan(run, h.name)
    ours = (KEYSTORE_DIR, HOT_KEYSTORE_DIR)
    left = [f["path"] for f in found if f["path"] not in want]
    removable = [p for p in left if p.startswith(tuple(d + "/" for d in ours))]
    elsewhere = [p for p in left if p not in removable]
    if elsewhere:
        raise StepFailed(f"{h.name}: keystore file(s) outside lpfleet's directories: {', '.join(elsewhere)}. Move them "
                         "off the host (or delete them) yourself, then run this again with --resume")
    removed = []
    for directory in ours:
        if any(p.startswith(directory + "/") for p in removable):
            # The services that read it go too: this host left the role.
            service = "lpnode-reward lpnode-redeemer" if directory == KEYSTORE_DIR else ""
            if service:
                run.fleet.run(h.name, f"systemctl disable --now {service}", check=False)
            run.fleet.run(h.name, f"sh -c 'find {directory} -type f -exec shred -u {{}} + ; rm -rf {directory}'")
            removed.append(directory)
    again = [f["path"] for f in scan(run, h.name) if f["path"] not in want]
    if again:
        raise StepFailed(f"{h.name}: still holds {', '.join(again)} after removing them")
    kept = f"holds only {', '.join(sorted(want))}" if want else "holds no keystore"
    return kept + (f" (removed {', '.join(removed)}: this host left the role)" if removed else "")


def arguments(p: argparse.ArgumentParser) -> None:
    """No options of its own: the inventory says which host gets which keystore."""


def plan(run: Run, limit: list[str] | None, args: argparse.Namespace) -> Plan:
    fleet = run.fleet
    hosts = [h for h in fleet.hosts.values() if not limit or h.name in limit]
    holders = [h for h in hosts if expected(h)]
    if not holders and not limit:
        raise RemoteError(f"{fleet.inventory}: no host's role needs a keystore (no reward host, redeemer or on-chain "
                          "orchestrator with keystore_path/hot_keystore_path)")
    waves = []
    for h in holders:
        steps = []
        if h.in_group(REWARD):
            steps.append(Step(f"{h.name}:rewarded", f"{h.name}: this round's reward called first",
                              partial(rewarded_this_round, run, h.name), h.name,
                              "its reward service's /status: rewarded this round"))
        steps.append(Step(f"{h.name}:keystore", f"{h.name}: deploy its keystore(s) ({', '.join(expected(h))})",
                          partial(put, run, h), h.name, "sha256 on the host = the inventory's file; 0400 for the "
                                                         "service user, password too"))
        waves.append(Wave(f"keystore host {h.name}", tuple(steps)))
    waves.append(Wave("scan every host", tuple(
        Step(f"{h.name}:scan", f"{h.name}: no keystore but its own (left ones removed)",
             partial(prove_none_other, run, h), h.name, "every geth keystore file under /etc, /var/lib, /root, "
                                                         "/home, /opt, /srv, /tmp ...")
        for h in hosts)))
    return Plan(NAME, tuple(waves))
