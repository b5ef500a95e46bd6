"""The lab state file: what `lpfleet lab up` built, for inventory/lab.py, tests and the CLI.

`<state dir>/state.json` (default /var/lib/lpfleet-lab/state.json), written by `up`, removed by
`down`. Format (version 1):

    {"version": 1, "state_dir": "/var/lib/lpfleet-lab", "subnet": "10.77.0.0/24",
     "gateway": "10.77.0.1", "bridge": "lpfleet0", "ssh_user": "root",
     "ssh_key": ".../ssh/id_ed25519", "ssh_config": ".../ssh/config",
     "known_hosts": ".../ssh/known_hosts", "orch_secret_file": ".../secrets/orchSecret",
     "admin_token_file": ".../secrets/admin_token",
     "alert_receiver_token_file": ".../secrets/alert_receiver_token", "dns": ["..."],
     "chain": {"rpc_url": "http://10.77.0.1:8545", "controller": "0x...", ...},
     "hosts": [{"name": "o1", "address": "10.77.0.11", "group": "orchestrators",
                "netns": "lpfleet-o1", "veth": "lpv-o1", "machine": "lpfleet-o1",
                "root": ".../hosts/o1/root"}, ...]}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import config

VERSION = 1


class LabNotUp(config.LabError):
    def __init__(self, path: Path | None = None):
        where = f" (no {path})" if path else ""
        super().__init__(f"lab is not up: run lpfleet lab up{where}")


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    group: str
    netns: str
    veth: str
    machine: str
    root: str  # the host's root directory on the control machine (an overlay mount)

    @property
    def dir(self) -> Path:
        return Path(self.root).parent


@dataclass
class LabState:
    state_dir: str
    ssh_key: str
    ssh_config: str
    known_hosts: str
    orch_secret_file: str
    admin_token_file: str
    hosts: list[Host]
    dns: list[str] = field(default_factory=list)
    # Written by every `up` since the monitoring deploy; empty in an older state file.
    alert_receiver_token_file: str = ""
    # The lab chain (lab/chain.py): RPC URL, Controller, round length, the orchestrator's
    # account and the files of its keystore, password and RPC URL. Empty without orchestrators.
    chain: dict = field(default_factory=dict)
    subnet: str = config.SUBNET
    gateway: str = config.GATEWAY
    bridge: str = config.BRIDGE
    ssh_user: str = config.SSH_USER
    version: int = VERSION

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name or h.address == name:
                return h
        raise config.LabError(
            f"no lab host {name!r} (hosts: {', '.join(h.name for h in self.hosts)})"
        )

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def group(self, group: str) -> list[Host]:
        return [h for h in self.hosts if h.group == group]

    def to_json(self) -> dict:
        d = asdict(self)
        d["hosts"] = [asdict(h) for h in self.hosts]
        return d

    @classmethod
    def from_json(cls, d: dict) -> LabState:
        d = dict(d)
        if d.get("version") != VERSION:
            raise config.LabError(
                f"lab state file has version {d.get('version')!r}, this lpfleet reads {VERSION}: "
                "run lpfleet lab down && lpfleet lab up"
            )
        d["hosts"] = [Host(**h) for h in d["hosts"]]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def path() -> Path:
    return config.state_dir() / "state.json"


def exists() -> bool:
    return path().is_file()


def load() -> LabState:
    """The running lab's state; raises LabNotUp if `lpfleet lab up` has not run."""
    p = path()
    try:
        raw = p.read_text()
    except FileNotFoundError:
        raise LabNotUp(p) from None
    return LabState.from_json(json.loads(raw))


def save(state: LabState) -> None:
    p = path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, p)


def remove() -> None:
    path().unlink(missing_ok=True)
