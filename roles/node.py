"""lpnode as a hardened systemd service: orchestrator or transcoder."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import FileContents
from pyinfra.facts.server import Arch, LinuxDistribution
from pyinfra.operations import files, pip, systemd

from roles import wheelhouse
from roles._facts import PythonVersion
from roles._ops import jinja_options, sync_directory, template_path, validated_template
from roles.common import CommonSettings
from roles.secrets import (
    ADMIN_TOKEN_PATH,
    AUTH_KEY_PATH,
    CONFIG_DIR,
    ETH_URL_PATH,
    HOT_KEYSTORE_FILE,
    HOT_KEYSTORE_PASSWORD_PATH,
    ORCH_CERT_PATH,
    ORCH_SECRET_PATH,
    REDEEMER_TOKEN_PATH,
    TLS_CERT_PATH,
    TLS_KEY_PATH,
)
from roles.settings import RoleSettings, at_least, setting

SERVICE = "lpnode"
VENV = "/opt/lpnode/venv"
WHEELHOUSE = "/opt/lpnode/wheelhouse"
CONFIG_PATH = f"{CONFIG_DIR}/lpnode.conf"
UNIT_PATH = f"/etc/systemd/system/{SERVICE}.service"
DATADIR = "/var/lib/lpnode"
SERVICE_PORT = 8935
CLI_PORT = 7935

# The python3 each supported release ships, for a first deploy where python3 is not there yet.
_DISTRO_PYTHON = {("debian", 12): "3.11", ("debian", 13): "3.13", ("ubuntu", 24): "3.12"}
MIN_PYTHON = (3, 11)
# "orchestrator+transcoder" is a solo node transcoding locally in the same process.
ROLES = ("orchestrator", "transcoder", "orchestrator+transcoder")


def target_python(python: str | None = None) -> str:
    """The ``major.minor`` of the host's python3, which the wheelhouse is built for."""
    version = python or host.get_fact(PythonVersion)
    if not version:
        distro = host.get_fact(LinuxDistribution)
        key = (str(distro["release_meta"].get("ID", "")).lower(), int(distro["major"] or 0))
        version = _DISTRO_PYTHON.get(key)
    if not version:
        raise DeployError(f"{host.name}: cannot tell which python3 this host has; "
                          "set lpnode_python (e.g. '3.11') in its data")
    if tuple(int(p) for p in version.split(".")[:2]) < MIN_PYTHON:
        raise DeployError(
            f"{host.name}: python3 is {version}, lpnode needs {'.'.join(map(str, MIN_PYTHON))} or newer "
            "(Debian 12, Ubuntu 24.04)"
        )
    return version


def config_flags(
    role: str,
    address: str,
    settings: NodeSettings | None = None,
    orch_addr: str | None = None,
    host_name: str = "lpnode",
    transcoder_name: str | None = None,
    tls: bool = True,
    redeemer_addr: str | None = None,
    hot_password: bool = True,
    balancer: str | None = None,
) -> list[tuple[str, str | int | bool]]:
    """The (flag, value) lines of lpnode's config file; ``True`` is a bare boolean flag."""
    s = settings or NodeSettings()
    if role not in ROLES:
        raise DeployError(f"{host_name}: unknown lpnode role {role!r}; one of {', '.join(ROLES)}")
    flags: list[tuple[str, str | int | bool]] = []
    if "orchestrator" in role:
        flags += [
            ("orchestrator", True),
            # Behind a load balancer gateways reach it, renditions included, through the balancer.
            ("serviceAddr", balancer or f"{address}:{s.service_port}"),
            ("httpAddr", f"0.0.0.0:{s.service_port}"),
            ("pricePerUnit", s.price_per_unit),
            ("pixelsPerUnit", s.pixels_per_unit),
        ]
        if tls:
            flags += [("tlsCertFile", TLS_CERT_PATH), ("tlsKeyFile", TLS_KEY_PATH)]
        if balancer:
            # The orchestrators behind one balancer accept each other's sessions.
            flags.append(("authTokenKeyFile", AUTH_KEY_PATH))
    if "transcoder" in role:
        flags.append(("transcoder", True))
        if role == "transcoder":
            if not orch_addr:
                raise DeployError(f"{host_name}: a transcoder needs its orchestrator's address (data: orchestrator)")
            flags.append(("orchAddr", orch_addr))
            if tls:
                # Its orchestrator's certificate: the orchSecret goes to no other server.
                flags.append(("orchCert", ORCH_CERT_PATH))
        if s.gpus:
            flags.append(("nvidia", s.gpus))
        # The orchestrator labels this transcoder's metrics with it: the inventory name, so
        # dashboards and alerts find it whatever the host calls itself.
        if transcoder_name:
            flags.append(("transcoderName", transcoder_name))
    on_chain = "orchestrator" in role and s.network != "offchain"
    flags += [("network", s.network if on_chain else "offchain")]
    if on_chain:
        flags += _chain_flags(s, redeemer_addr, hot_password)
    flags += [
        ("orchSecret", ORCH_SECRET_PATH),
        ("maxSessions", s.max_sessions),
        # Reachable from the monitoring hosts only: the firewall admits nobody else on it.
        ("cliAddr", f"0.0.0.0:{s.cli_port}"),
        ("monitor", True),
        ("datadir", DATADIR),
        ("v", s.verbosity),
    ]
    if s.admin_token:
        flags.append(("adminTokenFile", ADMIN_TOKEN_PATH))
    for name, value in s.extra_flags.items():
        flags.append((name.lstrip("-"), value))
    return checked_flags(host_name, flags)


def _chain_flags(s: NodeSettings, redeemer_addr: str | None, hot_password: bool) -> list[tuple[str, str | int | bool]]:
    """An on-chain orchestrator's: its hot key, the RPC URL, ticket settings, the redeemer."""
    flags: list[tuple[str, str | int | bool]] = []
    if s.eth_controller:
        flags.append(("ethController", s.eth_controller))
    flags += [("ethUrl", ETH_URL_PATH), ("ethKeystorePath", HOT_KEYSTORE_FILE)]
    if hot_password:
        flags.append(("ethPassword", HOT_KEYSTORE_PASSWORD_PATH))
    if s.eth_orch_addr:
        flags.append(("ethOrchAddr", s.eth_orch_addr))
    # The reward host calls reward (roles/reward.py); the orchestrator's hot key never does.
    flags += [("reward", False), ("ticketEV", s.ticket_ev)]
    if s.max_face_value:
        flags.append(("maxFaceValue", s.max_face_value))
    if redeemer_addr:
        flags += [("redeemerAddr", redeemer_addr), ("redeemerTokenFile", REDEEMER_TOKEN_PATH)]
    return flags


def checked_flags(host_name: str, flags: list[tuple[str, str | int | bool]]) -> list[tuple[str, str | int | bool]]:
    """``flags``, refused if one cannot be written to lpnode's config file."""
    for name, value in flags:
        text = str(value)
        # The config format has no quoting: a value is the rest of the line up to " #".
        if "\n" in text or " #" in text or not name.isidentifier():
            raise DeployError(f"{host_name}: lpnode flag {name} = {text!r} cannot be written to a config file")
    return flags


def service_files(what: str, role: str, config_path: str, unit_path: str,
                  flags: list[tuple[str, str | int | bool]], service_user: str, restart_sec: int,
                  gpu: bool = False, reloadable: bool = False, state_directory: str = "lpnode") -> tuple[Any, Any]:
    """An lpnode service's config file (checked by lpnode before it goes live) and systemd
    unit, as operations: (config, unit)."""
    config = validated_template(
        name=f"{what} config {config_path} (checked by lpnode itself)",
        src="lpnode.conf.j2",
        dest=config_path,
        # lpnode checks every flag and how they combine, as at start-up, so a typo'd flag or a
        # bad value fails here instead of in a crash-looping service.
        validate=f"{VENV}/bin/lpnode check-config {{path}}",
        user="root",
        group=service_user,
        mode="640",
        role=role,
        host_name=host.name,
        flags=flags,
    )
    unit = files.template(
        name=f"systemd unit {unit_path}",
        src=template_path("lpnode.service.j2"),
        dest=unit_path,
        mode="644",
        jinja_env_kwargs=jinja_options(),
        role=role,
        service_user=service_user,
        venv=VENV,
        config_path=config_path,
        restart_sec=restart_sec,
        gpu=gpu,
        reloadable=reloadable,
        state_directory=state_directory,
    )
    return config, unit


def chain_service(what: str, service: str, role: str, config_path: str, unit_path: str,
                  flags: list[tuple[str, str | int | bool]], service_user: str, state_directory: str,
                  restart: bool) -> None:
    """An on-chain lpnode service in a unit of its own (the reward service, the redeemer): its
    config and unit, running and enabled, restarted when they change or ``restart`` says so
    (a new build, a changed keystore or URL)."""
    config, unit = service_files(what=what, role=role, config_path=config_path, unit_path=unit_path, flags=flags,
                                 service_user=service_user, restart_sec=5, state_directory=state_directory)
    systemd.service(
        name=f"{what} running and enabled at boot",
        service=service,
        running=True,
        enabled=True,
        daemon_reload=unit.will_change,
        restarted=restart or config.will_change or unit.will_change,
    )


@operation()
def wheelhouse_install(venv: str, wheelhouse_dir: str, lpnode_wheel: str, build_id: str):
    """Install the synced wheelhouse into ``venv`` unless this build is what it already has.

    The build id is recorded in the venv after a successful install, so an install that failed
    half-way is retried by the next run.
    """
    marker = f"{venv}/.lpfleet-build"
    if host.get_fact(FileContents, path=marker) == [build_id]:
        return
    pip_install = (f"{venv}/bin/pip install --no-index --disable-pip-version-check --quiet "
                   f"--find-links {shlex.quote(wheelhouse_dir)}")
    yield StringCommand(f"{pip_install} --requirement {shlex.quote(wheelhouse_dir + '/requirements.txt')}")
    # lpnode's version does not change with every build, so pip would consider it satisfied.
    yield StringCommand(f"{pip_install} --no-deps --force-reinstall {shlex.quote(wheelhouse_dir + '/' + lpnode_wheel)}")
    yield StringCommand(f"echo {shlex.quote(build_id)} > {shlex.quote(marker)}")


_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PRICE = re.compile(r"^\d+(\.\d+)?([A-Za-z][A-Za-z0-9]*)?$")


def _address_or_empty(value: Any) -> str | None:
    return None if value == "" or _ADDRESS.match(str(value)) else "is not an address (0x and 40 hex digits)"


def _price(value: Any) -> str | None:
    return None if _PRICE.match(str(value)) else "is not a price: a number of wei, or a number and a currency (0.5USD)"


@dataclass(frozen=True)
class NodeSettings(RoleSettings):
    """lpnode's settings: inventory data ``lpnode_<field>``."""

    PREFIX: ClassVar[str] = "lpnode_"
    ROLE: ClassVar[str] = "lpnode"

    max_sessions: int | Literal["auto"] = setting(
        10, doc="`-maxSessions`: an orchestrator's sessions at once, a transcoder's capacity; `auto` "
                "(orchestrator without local transcoding) sums its transcoders' capacities",
        check=lambda v: None if v == "auto" or v >= 1 else "must be 1 or more, or auto")
    price_per_unit: int | str = setting(0, doc="`-pricePerUnit`: orchestrator price per `pixels_per_unit` "
                                               "pixels: wei (`1000`), or on chain `0.5USD`, `0.000001ETH`",
                                        check=_price)
    pixels_per_unit: int = setting(1, doc="`-pixelsPerUnit`", check=at_least(1))
    service_port: int = setting(SERVICE_PORT, doc="where gateways and transcoders connect "
                                                  "(an orchestrator's `-serviceAddr` port)")
    cli_port: int = setting(CLI_PORT, doc="the admin/status/metrics listener, firewalled to the "
                                          "monitoring hosts")
    gpus: str = setting("", doc="`-nvidia`: `all` or GPU ids `0,1`; empty transcodes on the CPU "
                                "(hosts in the `gpu` group default to `all`)")
    verbosity: int = setting(3, doc="`-v`", check=at_least(0))
    extra_flags: dict[str, str | int | bool] = setting(
        factory=dict, doc="more lpnode flags, e.g. `{\"orchSecretGrace\": \"5m\"}`")
    admin_token: bool = setting(True, doc="pass `-adminTokenFile` (the secrets role writes the "
                                          "file); off turns the admin actions off")
    python: str | None = setting(None, doc="the host's python3 `major.minor`, when it cannot be "
                                           "detected")
    restart_sec: int = setting(5, doc="systemd `RestartSec` of the unit", check=at_least(1))
    network: str = setting("offchain", doc="`-network` of an orchestrator: `offchain`, or on chain "
                           "`arbitrum-one-mainnet` (or a test chain with `lpnode_eth_controller`), which "
                           "needs `hot_keystore_path`, its password and `eth_url_file`/`eth_url_env`")
    eth_controller: str = setting("", doc="`-ethController`: a test chain's Controller; empty for the "
                                  "network's own", check=_address_or_empty)
    eth_orch_addr: str = setting("", doc="`-ethOrchAddr`: the registered orchestrator address tickets "
                                 "pay (the hot key redeems them); empty: the hot key's own address",
                                 check=_address_or_empty)
    ticket_ev: int = setting(8_000_000_000, doc="`-ticketEV` in wei", check=at_least(1))
    max_face_value: int = setting(0, doc="`-maxFaceValue` in wei; 0: no cap", check=at_least(0))


@dataclass
class Installed:
    """What install_lpnode did, for the services that run the code to restart on."""

    will_change: bool


@deploy("lpnode")
def install_lpnode(python: str | None = None) -> Installed:
    """The current lpnode build in /opt/lpnode/venv, from a wheelhouse synced from here: hosts
    need no package index. Once per host, whichever lpnode services it runs.

    + python: the host's python3 ``major.minor`` when it cannot be detected (lpnode_python)
    """
    built = wheelhouse.build(target_python(python), host.get_fact(Arch))
    # Only root writes the code; the service user just runs it.
    sync = sync_directory(
        name="Sync the lpnode wheelhouse",
        src=str(built.path),
        dest=WHEELHOUSE,
        user="root",
        group="root",
        mode="644",
    )
    pip.venv(name=f"Virtualenv {VENV}", path=VENV, python="python3")
    install = wheelhouse_install(
        name=f"Install lpnode build {built.build_id} from the wheelhouse (no package index)",
        venv=VENV,
        wheelhouse_dir=WHEELHOUSE,
        lpnode_wheel=built.lpnode_wheel,
        build_id=built.build_id,
    )
    return Installed(will_change=sync.will_change or install.will_change)


@deploy("lpnode")
def node(
    role: str,
    address: str,
    settings: NodeSettings | None = None,
    orch_addr: str | None = None,
    service_user: str = CommonSettings.service_user,
    reload: bool = False,
    restart: bool = False,
    tls: bool = True,
    installed: Installed | None = None,
    redeemer_addr: str | None = None,
    hot_password: bool = True,
    balancer: str | None = None,
) -> None:
    """Run lpnode under systemd (installing it first unless ``installed`` says it was).

    + role: ``orchestrator``, ``transcoder`` or ``orchestrator+transcoder`` (transcodes locally)
    + address: this host's address: an orchestrator advertises ``address:service_port``
    + settings: the operator's settings (NodeSettings)
    + orch_addr: transcoder: its orchestrator's ``host:port``
    + service_user: the user lpnode runs as (the common role's setting)
    + reload: the secret changed: an orchestrator is sent SIGHUP (it re-reads the file and keeps
      the old secret for -orchSecretGrace), a transcoder is restarted
    + restart: restart even if nothing here changed, e.g. after a GPU driver was patched
    + tls: an orchestrator serves /etc/lpnode/tls.crt and tls.key, a transcoder pins its
      orchestrator's /etc/lpnode/orchestrator.crt (-orchCert); the secrets role puts them there
    + installed: install_lpnode's result, when the caller ran it (the host runs other lpnode
      services too)
    + redeemer_addr: on chain: the separate redeemer's ``host:port`` (the redeemers group)
    + hot_password: on chain: the hot keystore has a password file
    + balancer: orchestrator behind a load balancer: its ``host:port``, which the orchestrator
      advertises; the secrets role put the shared auth-token key in place
    """
    s = settings or NodeSettings()
    # Only an orchestrator reloads its secret on SIGHUP; a transcoder restarts to pick it up.
    reloadable = "orchestrator" in role
    if installed is None:
        installed = cast(Installed, install_lpnode(python=s.python))

    flags = config_flags(role=role, address=address, settings=s, orch_addr=orch_addr, host_name=host.name,
                         transcoder_name=f"{host.name}:{s.cli_port}", tls=tls, redeemer_addr=redeemer_addr,
                         hot_password=hot_password, balancer=balancer)
    config, unit = service_files(what="lpnode", role=role, config_path=CONFIG_PATH, unit_path=UNIT_PATH,
                                 flags=flags, service_user=service_user, restart_sec=s.restart_sec,
                                 gpu=bool(s.gpus), reloadable=reloadable)
    must_restart = (
        restart
        or (reload and not reloadable)
        or installed.will_change
        or any(op.will_change for op in (config, unit))
    )
    systemd.service(
        name="lpnode running and enabled at boot",
        service=SERVICE,
        running=True,
        enabled=True,
        daemon_reload=unit.will_change,
        restarted=must_restart,
        reloaded=reload and not must_restart,
    )
