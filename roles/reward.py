"""The reward service: `lpnode -reward` as its own systemd unit on the one reward host.

It is a process of its own even on a host that is also an orchestrator, so the cold key and its
password are read by nothing that faces gateways, and an orchestrator restart (a deploy, a
crash) never delays a reward call. docs/on-chain.md explains the layout, LIP-118 and the flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from pyinfra import host
from pyinfra.api import deploy

from roles.common import CommonSettings
from roles.node import Installed, chain_service, checked_flags
from roles.secrets import CONFIG_DIR, ETH_URL_PATH, KEYSTORE_FILE, KEYSTORE_PASSWORD_PATH
from roles.settings import RoleSettings, at_least, setting

SERVICE = "lpnode-reward"
CONFIG_PATH = f"{CONFIG_DIR}/reward.conf"
UNIT_PATH = f"/etc/systemd/system/{SERVICE}.service"
STATE_DIRECTORY = "lpnode-reward"
DATADIR = f"/var/lib/{STATE_DIRECTORY}"
# Beside an orchestrator's 7935 on the same host; firewalled to the monitoring hosts.
CLI_PORT = 7936

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _address_or_empty(value: Any) -> str | None:
    return None if value == "" or _ADDRESS.match(str(value)) else "is not an address (0x and 40 hex digits)"


def _on_chain_network(value: Any) -> str | None:
    return "is off chain: the reward service needs the chain, e.g. arbitrum-one-mainnet" \
        if value == "offchain" else None


@dataclass(frozen=True)
class RewardSettings(RoleSettings):
    """The reward service's settings: inventory data ``reward_<field>`` on the reward host.
    The RPC URL, keystore and password are secrets: ``eth_url_file``/``eth_url_env``,
    ``keystore_path``, ``keystore_password_file``/``keystore_password_env``."""

    PREFIX: ClassVar[str] = "reward_"
    ROLE: ClassVar[str] = "reward"

    network: str = setting("arbitrum-one-mainnet", doc="`-network`: `arbitrum-one-mainnet` (the "
                           "Livepeer network), or a test chain's name with `reward_controller`",
                           check=_on_chain_network)
    controller: str = setting("", doc="`-ethController`: the protocol's Controller; empty for "
                              "the network's own", check=_address_or_empty)
    orch_addr: str = setting("", doc="`-ethOrchAddr` (LIP-118): the orchestrator to reward when "
                             "the keystore holds its reward caller, not the orchestrator's own key",
                             check=_address_or_empty)
    initialize_round: bool = setting(True, doc="`-initializeRound`: initialize a round nobody has, "
                                     "after a random delay (reward needs it)")
    block_polling_interval: int = setting(5, doc="`-blockPollingInterval`: seconds between looks "
                                          "at the chain", check=at_least(1))
    max_gas_price: int = setting(0, doc="`-maxGasPrice` in wei; 0: no limit", check=at_least(0))
    cli_port: int = setting(CLI_PORT, doc="the reward service's /status and /metrics listener, "
                            "firewalled to the monitoring hosts")
    verbosity: int = setting(3, doc="`-v`", check=at_least(0))
    extra_flags: dict[str, str | int | bool] = setting(
        factory=dict, doc="more lpnode flags, e.g. `{\"initializeRoundMaxDelay\": \"5m\"}`")


def config_flags(settings: RewardSettings, password: bool = True,
                 host_name: str = "reward") -> list[tuple[str, str | int | bool]]:
    """The (flag, value) lines of the reward service's config file."""
    s = settings
    flags: list[tuple[str, str | int | bool]] = [("network", s.network)]
    if s.controller:
        flags.append(("ethController", s.controller))
    flags += [
        ("ethUrl", ETH_URL_PATH),
        ("ethKeystorePath", KEYSTORE_FILE),
    ]
    if password:
        flags.append(("ethPassword", KEYSTORE_PASSWORD_PATH))
    if s.orch_addr:
        flags.append(("ethOrchAddr", s.orch_addr))
    flags += [
        # Alone, -reward is the reward service and nothing else (no 8935, no transcoding).
        ("reward", True),
    ]
    if s.initialize_round:
        flags.append(("initializeRound", True))
    flags.append(("blockPollingInterval", s.block_polling_interval))
    if s.max_gas_price:
        flags.append(("maxGasPrice", s.max_gas_price))
    flags += [
        ("cliAddr", f"0.0.0.0:{s.cli_port}"),
        ("monitor", True),
        ("datadir", DATADIR),
        ("v", s.verbosity),
    ]
    for name, value in s.extra_flags.items():
        flags.append((name.lstrip("-"), value))
    return checked_flags(host_name, flags)


@deploy("reward")
def reward(
    installed: Installed,
    settings: RewardSettings | None = None,
    service_user: str = CommonSettings.service_user,
    secrets_changed: bool = False,
    password: bool = True,
) -> None:
    """Run the reward service (lpnode must be installed: install_lpnode's result).

    + installed: what install_lpnode did on this host (a new build restarts the service)
    + settings: the operator's RewardSettings
    + service_user: the user it runs as, owner of the keystore (the common role's setting)
    + secrets_changed: the keystore, its password or the RPC URL changed: restart
    + password: the keystore has a password file (keystore_password_file/env)
    """
    s = settings or RewardSettings()
    chain_service(what="reward service", service=SERVICE, role="reward", config_path=CONFIG_PATH,
                  unit_path=UNIT_PATH, flags=config_flags(s, password, host.name), service_user=service_user,
                  state_directory=STATE_DIRECTORY, restart=secrets_changed or installed.will_change)
