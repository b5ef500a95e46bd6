"""A separate ticket redeemer: `lpnode -redeemer` as its own systemd unit on each host of the
`redeemers` group. On-chain orchestrators hand it their winning tickets (-redeemerAddr, with
the shared token), and it redeems them with its own account, which pays the gas. Its own unit
even on a host that runs other lpnode services: it holds a keystore, and nothing that faces
gateways should read that. docs/getting-paid.md explains the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyinfra import host
from pyinfra.api import deploy

from roles.common import CommonSettings
from roles.node import Installed, chain_service, checked_flags
from roles.reward import _address_or_empty, _on_chain_network
from roles.secrets import CONFIG_DIR, ETH_URL_PATH, KEYSTORE_FILE, KEYSTORE_PASSWORD_PATH, REDEEMER_TOKEN_PATH
from roles.settings import RoleSettings, at_least, setting

SERVICE = "lpnode-redeemer"
CONFIG_PATH = f"{CONFIG_DIR}/redeemer.conf"
UNIT_PATH = f"/etc/systemd/system/{SERVICE}.service"
STATE_DIRECTORY = "lpnode-redeemer"
DATADIR = f"/var/lib/{STATE_DIRECTORY}"
# Beside an orchestrator's 8935 and 7935 and the reward service's 7936 on the same host.
PORT = 8936
CLI_PORT = 7937


def _required_address(value: object) -> str | None:
    return "is required: the orchestrator whose tickets it redeems" if value == "" else _address_or_empty(value)


@dataclass(frozen=True)
class RedeemerSettings(RoleSettings):
    """The redeemer's settings: inventory data ``redeemer_<field>`` on each redeemer host. Its
    secrets: ``keystore_path`` and ``keystore_password_file``/``_env`` (the account that pays
    the gas), ``eth_url_file``/``_env``, and ``redeem_token_file``/``_env`` (shared with the
    orchestrators)."""

    PREFIX: ClassVar[str] = "redeemer_"
    ROLE: ClassVar[str] = "redeemer"

    network: str = setting("arbitrum-one-mainnet", doc="`-network`, as the orchestrators'",
                           check=_on_chain_network)
    controller: str = setting("", doc="`-ethController`: a test chain's Controller; empty for the "
                              "network's own", check=_address_or_empty)
    orch_addr: str = setting("", doc="`-ethOrchAddr`: the orchestrator address whose tickets it "
                             "redeems (tickets to anyone else are refused)", check=_required_address)
    port: int = setting(PORT, doc="where orchestrators reach it (`-httpAddr`); open to the "
                        "orchestrators only")
    block_polling_interval: int = setting(5, doc="`-blockPollingInterval`", check=at_least(1))
    max_gas_price: int = setting(0, doc="`-maxGasPrice` in wei; 0: no limit", check=at_least(0))
    cli_port: int = setting(CLI_PORT, doc="its /status and /metrics, firewalled to the monitoring hosts")
    verbosity: int = setting(3, doc="`-v`", check=at_least(0))
    extra_flags: dict[str, str | int | bool] = setting(factory=dict, doc="more lpnode flags")


def config_flags(settings: RedeemerSettings, password: bool = True,
                 host_name: str = "redeemer") -> list[tuple[str, str | int | bool]]:
    s = settings
    flags: list[tuple[str, str | int | bool]] = [("redeemer", True), ("network", s.network)]
    if s.controller:
        flags.append(("ethController", s.controller))
    flags += [("ethUrl", ETH_URL_PATH), ("ethKeystorePath", KEYSTORE_FILE)]
    if password:
        flags.append(("ethPassword", KEYSTORE_PASSWORD_PATH))
    flags += [
        ("ethOrchAddr", s.orch_addr),
        ("httpAddr", f"0.0.0.0:{s.port}"),
        ("redeemerTokenFile", REDEEMER_TOKEN_PATH),
        ("blockPollingInterval", s.block_polling_interval),
    ]
    if s.max_gas_price:
        flags.append(("maxGasPrice", s.max_gas_price))
    flags += [("cliAddr", f"0.0.0.0:{s.cli_port}"), ("monitor", True), ("datadir", DATADIR), ("v", s.verbosity)]
    flags += [(name.lstrip("-"), value) for name, value in s.extra_flags.items()]
    return checked_flags(host_name, flags)


@deploy("redeemer")
def redeemer(
    installed: Installed,
    settings: RedeemerSettings,
    service_user: str = CommonSettings.service_user,
    secrets_changed: bool = False,
    password: bool = True,
) -> None:
    """Run the ticket redeemer (lpnode must be installed: install_lpnode's result).

    + installed: what install_lpnode did on this host (a new build restarts the service)
    + settings: the operator's RedeemerSettings
    + service_user: the user it runs as, owner of the keystore
    + secrets_changed: the keystore, its password, the RPC URL or the token changed: restart
    + password: the keystore has a password file
    """
    chain_service(what="ticket redeemer", service=SERVICE, role="redeemer", config_path=CONFIG_PATH,
                  unit_path=UNIT_PATH, flags=config_flags(settings, password, host.name), service_user=service_user,
                  state_directory=STATE_DIRECTORY, restart=secrets_changed or installed.will_change)
