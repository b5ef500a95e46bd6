"""lpnode's flags: go-livepeer's syntax, sources and precedence, lpnode's rules.

Flags come from three places, exactly as go-livepeer reads them through
peterbourgon/ff (v3, ``WithEnvVarPrefix("LP")``, ``PlainParser``):

1. the command line, with Go ``flag`` package syntax;
2. environment variables ``LP_<NAME>``: the flag name upper-cased, with ``-``,
   ``.`` and ``/`` turned into ``_`` (``-orchSecret`` -> ``LP_ORCHSECRET``);
   an empty variable counts as unset;
3. the ``-config`` file: one ``name value`` per line.

A flag set by an earlier source is never overridden by a later one.

Where go-livepeer silently accepts a mistake (stray positional arguments, a
string flag alone on a config-file line) lpnode stops with a ``FlagError``
that names the flag and the fix; the differences are listed in docs/flags.md.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import pwd
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from lpnode.net import address
from lpnode.net.headers import TRANSCODER_NAME_PATTERN
from lpnode.pm.pricing import DEFAULT_CEILING_PERCENT, PriceSpec, Pricing, parse_gateway_prices

ENV_PREFIX = "LP"

# go-livepeer's well-known ports (cmd/livepeer/starter).
ORCHESTRATOR_RPC_PORT = 8935
ORCHESTRATOR_CLI_PORT = 7935
TRANSCODER_CLI_PORT = 6935

DEFAULT_MAX_SESSIONS = 10
DEFAULT_ORCH_SECRET_GRACE = timedelta(minutes=10)
DEFAULT_VERBOSITY = 3
# go-livepeer's -ticketEV default (wei).
DEFAULT_TICKET_EV = 8_000_000_000
# go-livepeer's networks with a known Controller (cmd/livepeer/starter/starter.go).
CONTROLLERS = {"arbitrum-one-mainnet": "0xD8E8328501E9645d16Cf49539efC04f734606ee4"}
# go-livepeer's default -priceFeedAddr: Chainlink's ETH/USD feed on Arbitrum One.
PRICE_FEEDS = {"arbitrum-one-mainnet": "0x639Fe6ab55C921f74e7fac1ee960C0B6293ba612"}


class FlagError(ValueError):
    """A flag is unknown, malformed, or inconsistent with the others.

    The message is meant for the operator: it names the flag and says what to fix.
    """


class HelpRequested(Exception):
    """``-h``/``-help`` was given; the message is the usage text to print."""


class VersionRequested(Exception):
    """``-version`` was given: print the version and exit, as go-livepeer does."""


# --------------------------------------------------------------------------- values


def env_var_for(flag_name: str) -> str:
    """The environment variable ff derives for a flag: ``orchSecret`` -> ``LP_ORCHSECRET``."""
    key = flag_name.upper()
    for sep in "-./":
        key = key.replace(sep, "_")
    return f"{ENV_PREFIX}_{key}"


_BOOL_VALUES = MappingProxyType(
    # strconv.ParseBool's accepted spellings, which is what Go's flag package uses.
    {s: True for s in ("1", "t", "T", "TRUE", "true", "True")}
    | {s: False for s in ("0", "f", "F", "FALSE", "false", "False")}
)


def _parse_bool(raw: str) -> bool:
    try:
        return _BOOL_VALUES[raw]
    except KeyError:
        raise ValueError("expected true or false (or 1/0)") from None


def _parse_int(raw: str) -> int:
    # Explicit pattern: Python's int() would also accept "1_000" and " 5 ".
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise ValueError("expected a whole number")
    return int(raw)


def _parse_max_sessions(raw: str) -> int | None:
    if raw == "auto":
        return None
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise ValueError("expected a whole number >= 1, or 'auto' (orchestrator with remote transcoders only)")
    return int(raw)


def _parse_price(raw: str) -> str:
    PriceSpec.parse(raw)
    return raw.strip()


# Go's time.ParseDuration units, in nanoseconds.
_DURATION_UNITS = MappingProxyType(
    {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
     "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
)
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(raw: str) -> timedelta:
    """Parse a Go duration string ("10m", "1h30m", "1.5s", "0")."""
    text = raw[1:] if raw[:1] in "+-" else raw
    negative = raw.startswith("-")
    if text == "0":
        return timedelta(0)
    total_ns = 0.0
    pos = 0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            break
        total_ns += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError("expected a duration like 30s, 10m or 1h30m")
    value = timedelta(microseconds=total_ns / 1000)
    return -value if negative else value


def _parse_transcoder_name(raw: str) -> str | None:
    if raw and not re.fullmatch(TRANSCODER_NAME_PATTERN, raw):
        raise ValueError("up to 100 letters, digits and ._:@[]- starting with a letter or "
                         "digit, e.g. gpu-host-3")
    return raw or None


def _check_addr(addr: str, lowest_port: int = 1) -> str:
    """Validate ``host[:port]`` (either part may be empty) and return it unchanged."""
    if any(c.isspace() or c in "/?#@" for c in addr):
        raise ValueError("expected host[:port], e.g. 0.0.0.0:8935")
    _, port = address.split(addr)
    if port is not None and not (port.isdigit() and lowest_port <= int(port) <= 65535):
        raise ValueError(f"the port must be a number from {lowest_port} to 65535")
    return addr


def _check_listen_addr(addr: str) -> str:
    """A listening address: port 0 asks for any free port (the node logs the one it got)."""
    return _check_addr(addr, lowest_port=0)


def _default_addr(addr: str, default_host: str, default_port: int) -> str:
    """go-livepeer's defaultAddr: fill in whichever of host and port is missing."""
    if addr == "":
        return f"{default_host}:{default_port}"
    host, port = address.split(addr)
    return address.join(host or default_host, port or default_port)


def _parse_orch_addr(raw: str) -> tuple[str, ...]:
    addrs = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue  # tolerate "a,b," rather than turn it into 127.0.0.1:8935 as Go does
        # go-livepeer parses each entry as a URL and keeps only host:port.
        item = address.strip_scheme(item)
        _check_addr(item)
        addrs.append(_default_addr(item, "127.0.0.1", ORCHESTRATOR_RPC_PORT))
    if not addrs:
        raise ValueError("expected one or more host[:port], comma-separated")
    return tuple(addrs)


def _parse_redeemer_addr(raw: str) -> str | None:
    if not raw.strip():
        return None
    item = address.strip_scheme(raw.strip())
    _check_addr(item)
    return _default_addr(item, "127.0.0.1", ORCHESTRATOR_RPC_PORT)


def _parse_ip_list(raw: str) -> tuple[str, ...]:
    out = []
    for item in (i.strip() for i in raw.split(",")):
        if item:
            ipaddress.ip_address(item)  # ValueError names the bad one
            out.append(item)
    return tuple(out)


def _parse_service_addr(raw: str) -> str | None:
    value = raw.strip()
    if value == "":
        return None
    if value == "none":
        # go-livepeer's "none" only works together with -nodes, which lpnode lacks.
        raise ValueError(
            "'none' (no service address) needs -nodes, which lpnode does not support; give host[:port]"
        )
    _check_addr(address.strip_scheme(value))
    return value


def _parse_nvidia(raw: str) -> str:
    value = raw.strip()
    if value in ("", "all"):
        return value
    ids = [part.strip() for part in value.split(",")]
    if not all(i.isdigit() for i in ids):
        raise ValueError("expected 'all' or comma-separated GPU ids like 0,1 (empty for CPU)")
    return ",".join(ids)


def _parse_eth_address(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not re.fullmatch(r"(0x)?[0-9a-fA-F]{40}", value):
        raise ValueError("not an Ethereum address: 0x followed by 40 hex digits")
    return "0x" + value.removeprefix("0x")


def _parse_wei(raw: str) -> int:
    value = _parse_int(raw)
    if value < 0:
        raise ValueError("must be 0 or more (wei)")
    return value


def _parse_optional_bool(raw: str) -> bool | None:
    return _parse_bool(raw)


def _optional_str(raw: str) -> str | None:
    return raw or None


# --------------------------------------------------------------------------- flag table


@dataclass(frozen=True)
class _Flag:
    name: str
    kind: str  # the type shown in errors, usage and docs
    field: str | None  # NodeConfig field; None for -version
    convert: Callable[[str], object]
    default: object
    shown_default: str
    group: str
    help: str
    aliases: tuple[str, ...] = ()
    secret: bool = False  # never echo its value

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


_FLAGS: tuple[_Flag, ...] = (
    _Flag("orchestrator", "bool", "orchestrator", _parse_bool, False, "false", "Role",
          "Run as an orchestrator: take work from gateways on -httpAddr and hand it to the local "
          "transcoder (-transcoder) or to remote transcoders."),
    _Flag("transcoder", "bool", "transcoder", _parse_bool, False, "false", "Role",
          "Transcode. Alone: work as a remote transcoder for the orchestrator at -orchAddr. "
          "With -orchestrator: transcode locally."),
    _Flag("orchSecret", "string", "orch_secret", _optional_str, None, "", "Orchestrator/transcoder link",
          "Secret shared by an orchestrator and its remote transcoders: the path of a file holding it "
          "(recommended, mode 0600) or the secret itself.", secret=True),
    _Flag("orchSecretGrace", "duration", "orch_secret_grace", parse_duration, DEFAULT_ORCH_SECRET_GRACE, "10m",
          "Orchestrator/transcoder link",
          "lpnode: after the -orchSecret file is rotated (SIGHUP), "
          "how long the previous secret is still accepted."),
    _Flag("orchCert", "path", "orch_cert", _optional_str, None, "", "Orchestrator/transcoder link",
          "lpnode: transcoder: the orchestrators' TLS certificates (PEM, one or more); every "
          "connection is checked against them and the orchSecret is never sent to a server "
          "that does not present one. Without it any certificate is trusted, as in go-livepeer."),
    _Flag("orchAddr", "host:port,...", "orch_addr", _parse_orch_addr, (), "", "Orchestrator/transcoder link",
          "Transcoder: comma-separated orchestrator addresses host[:port] (port 8935 if omitted)."),
    _Flag("network", "string", "network", str, "offchain", "offchain", "Network and addresses",
          "Network to join: 'offchain', 'arbitrum-one-mainnet' (its Controller is known), or any "
          "other name together with -ethController."),
    _Flag("serviceAddr", "host:port", "service_addr", _parse_service_addr, None, "", "Network and addresses",
          "Orchestrator: public host[:port] gateways use to reach this node, "
          "advertised as https://<serviceAddr>."),
    _Flag("httpAddr", "host:port", "http_addr", _check_listen_addr, "", "", "Network and addresses",
          "Orchestrator: address to listen on for gateways and remote transcoders "
          "(default: all interfaces, port of -serviceAddr or 8935; port 0: any free port, logged)."),
    _Flag("cliAddr", "host:port", "cli_addr", _check_listen_addr, "", "", "Network and addresses",
          "Address of the local CLI/admin HTTP API "
          "(default: 127.0.0.1:7935 for an orchestrator, 127.0.0.1:6935 for a transcoder; "
          "port 0: any free port, logged)."),
    _Flag("tlsCertFile", "path", "tls_cert_file", _optional_str, None, "", "Network and addresses",
          "lpnode: PEM certificate for -httpAddr (with -tlsKeyFile); "
          "default: a self-signed pair kept in -dataDir."),
    _Flag("tlsKeyFile", "path", "tls_key_file", _optional_str, None, "", "Network and addresses",
          "lpnode: PEM private key for -tlsCertFile."),
    _Flag("adminTokenFile", "path", "admin_token_file", _optional_str, None, "", "Network and addresses",
          "lpnode: file holding the admin token for the CLI API on -cliAddr."),
    _Flag("authTokenKeyFile", "path", "auth_token_key_file", _optional_str, None, "", "Network and addresses",
          "lpnode: the key that signs gateways' session tokens (32 random bytes, created on first "
          "use; default: authtoken.key in -dataDir). Orchestrators behind one load balancer share "
          "it, so a gateway moved to another keeps its session."),
    _Flag("transcoderName", "name", "transcoder_name", _parse_transcoder_name, None, "",
          "Orchestrator/transcoder link",
          "lpnode: the name this transcoder gives orchestrators, which label its metrics with it "
          "(default: host name:-cliAddr port). Letters, digits and ._:@[]- only."),
    _Flag("maxSessions", "int|auto", "max_sessions", _parse_max_sessions, DEFAULT_MAX_SESSIONS, "10",
          "Transcoding",
          "Orchestrator: most concurrent transcoding sessions; transcoder: its capacity. "
          "'auto' (orchestrator without -transcoder only): the sum of the connected transcoders' capacities."),
    _Flag("nvidia", "string", "nvidia", _parse_nvidia, "", "", "Transcoding",
          "Comma-separated NVIDIA GPU ids, or 'all'; empty transcodes on the CPU."),
    _Flag("pricePerUnit", "price", "price_per_unit", _parse_price, "0", "0", "Pricing",
          "Orchestrator: price per -pixelsPerUnit pixels: wei (1000), ETH (0.000001ETH), or on chain a "
          "currency converted through -priceFeedAddr (0.5USD)."),
    _Flag("pixelsPerUnit", "int", "pixels_per_unit", _parse_int, 1, "1", "Pricing",
          "Number of pixels that -pricePerUnit pays for; must be > 0."),
    _Flag("pricePerGateway", "json|path", "price_per_gateway", _optional_str, None, "", "Pricing",
          'On chain: prices for particular gateways, JSON or a file holding it: {"gateways": [{"ethaddress": '
          '"0x...", "priceperunit": 1000, "pixelsperunit": 1, "currency": "USD"}]}.',
          aliases=("pricePerBroadcaster",)),
    _Flag("autoAdjustPrice", "bool", "auto_adjust_price", _parse_bool, True, "true", "Pricing",
          "On chain: add each gateway's ticket redemption overhead (1/txCostMultiplier) to its price."),
    _Flag("autoAdjustPriceCeiling", "int", "auto_adjust_price_ceiling", _parse_int, DEFAULT_CEILING_PERCENT,
          str(DEFAULT_CEILING_PERCENT), "Pricing",
          "lpnode: the most -autoAdjustPrice may add, in percent of the base price, however high gas goes."),
    _Flag("priceFeedAddr", "address", "price_feed_addr", _parse_eth_address, None, "", "Pricing",
          "On chain: the Chainlink-style (AggregatorV3) feed converting currency prices to ETH "
          "(default on arbitrum-one-mainnet: Chainlink's ETH/USD)."),
    _Flag("redeemer", "bool", "redeemer", _parse_bool, False, "false", "On chain",
          "Run as a ticket redeemer: orchestrators started with -redeemerAddr hand it their winning "
          "tickets for -ethOrchAddr, and it redeems them with its own account (which pays the gas)."),
    _Flag("redeemerAddr", "host:port", "redeemer_addr", _parse_redeemer_addr, None, "", "On chain",
          "Orchestrator: the redeemer to hand winning tickets to (kept on disk here until it has them)."),
    _Flag("redeemerTokenFile", "path", "redeemer_token_file", _optional_str, None, "", "On chain",
          "lpnode: file holding the token orchestrators and their redeemer share; a redeemer with one "
          "refuses tickets without it (go-livepeer's redeemer takes tickets from anyone who can reach it).",
          secret=True),
    _Flag("redeemerAllowFrom", "ip,...", "redeemer_allow_from", _parse_ip_list, (), "", "On chain",
          "lpnode: redeemer: addresses allowed in without the token (go-livepeer orchestrators, which "
          "cannot send one)."),
    _Flag("ticketEV", "int", "ticket_ev", _parse_wei, DEFAULT_TICKET_EV, str(DEFAULT_TICKET_EV), "Pricing",
          "On chain, orchestrator: the expected value in wei of each ticket a gateway pays with."),
    _Flag("maxFaceValue", "int", "max_face_value", _parse_wei, 0, "0", "Pricing",
          "On chain, orchestrator: the most a ticket may be worth in wei if it wins; 0: no cap beyond "
          "the gateway's reserve."),
    _Flag("ethUrl", "url", "eth_url", _optional_str, None, "", "On chain",
          "JSON-RPC endpoint of the chain (Arbitrum One for the Livepeer network), or the path of a "
          "file holding it (/, ~ or . first; mode 0600): providers put the API key in the URL. "
          "Never logged whole.", secret=True),
    _Flag("ethController", "address", "eth_controller", _parse_eth_address, None, "", "On chain",
          "The protocol's Controller contract (default: the -network's own)."),
    _Flag("ethKeystorePath", "path", "eth_keystore_path", _optional_str, None, "<dataDir>/keystore", "On chain",
          "A geth v3 keystore directory, or one key file. lpnode never creates an account."),
    _Flag("ethAcctAddr", "address", "eth_acct_addr", _parse_eth_address, None, "", "On chain",
          "The account to use from the keystore (default: its only or first one)."),
    _Flag("ethPassword", "path", "eth_password", _optional_str, None, "", "On chain",
          "File holding the keystore password (mode 0600), or the password itself (with a warning: "
          "it shows in `ps`).", secret=True),
    _Flag("ethOrchAddr", "address", "eth_orch_addr", _parse_eth_address, None, "", "On chain",
          "The orchestrator's address when it is not this node's account: reward is called for it "
          "through LIP-118's rewardForTranscoder, with this account as its reward caller."),
    _Flag("reward", "bool", "reward", _parse_optional_bool, None, "auto", "On chain",
          "Call reward() once every round. Unset: on when the orchestrator is registered. Alone, "
          "without -orchestrator or -transcoder: run only the reward service."),
    _Flag("initializeRound", "bool", "initialize_round", _parse_bool, False, "false", "On chain",
          "Initialize each round when nobody has, after a random delay."),
    _Flag("initializeRoundMaxDelay", "duration", "initialize_round_max_delay", parse_duration,
          timedelta(seconds=30), "30s", "On chain", "The longest of those random delays."),
    _Flag("blockPollingInterval", "int", "block_polling_interval", _parse_int, 5, "5", "On chain",
          "Seconds between looks at the chain."),
    _Flag("maxGasPrice", "int", "max_gas_price", _parse_wei, 0, "0", "On chain",
          "Most wei per gas a transaction may pay; above it nothing is sent (and lpnode tries again "
          "later). 0: no limit."),
    _Flag("minGasPrice", "int", "min_gas_price", _parse_wei, 0, "0", "On chain",
          "Least wei per gas offered."),
    _Flag("gasLimit", "int", "gas_limit", _parse_wei, 0, "0", "On chain",
          "Gas limit of every transaction; 0 estimates each."),
    _Flag("transactionTimeout", "duration", "transaction_timeout", parse_duration, timedelta(minutes=5), "5m",
          "On chain", "How long to wait for a transaction to be mined before replacing it."),
    _Flag("maxTransactionReplacements", "int", "max_transaction_replacements", _parse_int, 1, "1", "On chain",
          "How many times a slow transaction is replaced with 11% higher fees."),
    _Flag("monitor", "bool", "monitor", _parse_bool, False, "false", "Metrics and logging",
          "Collect performance metrics (Prometheus, on -cliAddr /metrics)."),
    _Flag("v", "int", "verbosity", _parse_int, DEFAULT_VERBOSITY, "3", "Metrics and logging",
          "Log verbosity: 3 normal, 4-6 increasingly verbose (6 = debug)."),
    _Flag("dataDir", "path", "datadir", str, "", "~/.lpData/<network>", "Storage",
          "Directory for lpnode's own files (TLS certificate and key, ...). "
          "-datadir is accepted as an older spelling.", aliases=("datadir",)),
    _Flag("config", "path", "config_file", _optional_str, None, "", "Other",
          "File of 'flag value' lines; command-line flags and LP_* environment variables take precedence."),
    _Flag("version", "bool", None, _parse_bool, False, "false", "Other",
          "Print the version and exit."),
)

_BY_NAME: Mapping[str, _Flag] = MappingProxyType({n: f for f in _FLAGS for n in f.names})
_BY_ENV: Mapping[str, _Flag] = MappingProxyType({env_var_for(n): f for f in _FLAGS for n in f.names})

# go-style flag name -> NodeConfig field, for code that reports or maps back to flags.
FLAG_TO_FIELD: Mapping[str, str] = MappingProxyType(
    {n: f.field for f in _FLAGS if f.field is not None for n in f.names}
)
FIELD_TO_FLAG: Mapping[str, str] = MappingProxyType({f.field: f.name for f in _FLAGS if f.field is not None})

# go-livepeer flags lpnode knows about but does not implement yet (cmd/livepeer/starter/flags.go
# and cmd/livepeer/livepeer.go), so they get "not supported yet" rather than "not defined".
UNSUPPORTED_FLAGS: frozenset[str] = frozenset(
    """
    j rtmpAddr nodes verifierUrl verifierPath localVerify httpIngest orchWebhookUrl extraNodes
    orchBlocklist orchMinLivepeerVersion selectRandFreq selectStakeWeight selectPriceWeight
    selectPriceExpFactor orchPerfStatsUrl region maxPricePerUnit maxPricePerCapability
    ignoreMaxPriceIfNeeded minPerfScore discoveryTimeout gatewayHost gateway broadcaster
    transcodingOptions maxAttempts currentManifest netint testTranscoder hevcDecoding
    aiServiceRegistry aiWorker aiServerless useLiveRunners liveRunnerConfig liveRunnerProxyUrl
    aiModels aiModelsDir aiRunnerImage aiVerboseLogs aiRunnerImageOverrides
    aiProcessingRetryTimeout aiRunnerContainersPerGPU aiMinRunnerVersion mediaMTXApiPassword
    liveRunnerAddr liveAITrickleHostForRunner liveAIAuthApiKey liveAIHeartbeatURL
    liveAIHeartbeatHeaders liveAIHeartbeatInterval liveAIAuthWebhookUrl livePaymentInterval
    liveOutSegmentTimeout liveAISaveNSegments liveAICapRefreshModels liveAICapReportInterval
    maxTicketEV maxTotalEV depositMultiplier metricsPerStream metricsClientIP
    metadataQueueUri metadataAmqpExchange metadataPublishTimeout objectStore recordStore
    FVfailGsbucket FVfailGskey authWebhookUrl startupAvailabilityCheck remoteSigner
    remoteSignerUrl remoteSignerHeaders remoteSignerWebhookUrl remoteSignerWebhookHeaders
    remoteSignerAllowNoAuth remoteDiscovery kafkaBootstrapServers kafkaUser kafkaPassword
    kafkaGatewayTopic
    """.split()
)
_UNSUPPORTED_BY_ENV: Mapping[str, str] = MappingProxyType({env_var_for(n): n for n in UNSUPPORTED_FLAGS})


_GATEWAY_FLAGS = frozenset(
    """gateway broadcaster rtmpAddr orchWebhookUrl orchBlocklist orchMinLivepeerVersion selectRandFreq
    selectStakeWeight selectPriceWeight selectPriceExpFactor orchPerfStatsUrl region maxPricePerUnit
    maxPricePerCapability ignoreMaxPriceIfNeeded minPerfScore discoveryTimeout gatewayHost
    transcodingOptions maxAttempts currentManifest httpIngest authWebhookUrl kafkaBootstrapServers
    kafkaUser kafkaPassword kafkaGatewayTopic""".split()
)
_ONCHAIN_FLAGS = frozenset(
    """ethAcctAddr ethPassword ethKeystorePath ethOrchAddr ethUrl ethController transactionTimeout
    maxTransactionReplacements gasLimit minGasPrice maxGasPrice initializeRound initializeRoundMaxDelay
    ticketEV maxFaceValue maxTicketEV maxTotalEV depositMultiplier priceFeedAddr autoAdjustPrice
    pricePerGateway pricePerBroadcaster blockPollingInterval redeemer redeemerAddr reward remoteSigner
    remoteSignerUrl remoteSignerHeaders remoteSignerWebhookUrl remoteSignerWebhookHeaders
    remoteSignerAllowNoAuth remoteDiscovery""".split()
)


def _unsupported(name: str) -> FlagError:
    if name in _GATEWAY_FLAGS:
        why = "lpnode runs only an orchestrator and/or transcoder; use go-livepeer for a gateway"
    elif name in _ONCHAIN_FLAGS:
        why = ("lpnode's on-chain support covers the account, reward, tickets and their redemption so far; "
               "this one comes later")
    elif name.lower().startswith(("ai", "live", "mediamtx", "useliverunners")):
        why = "lpnode has no AI or live-video pipelines"
    else:
        why = "a go-livepeer flag lpnode does not implement"
    return FlagError(f"-{name} is not supported by lpnode yet ({why}); remove it")


def _undefined(name: str) -> FlagError:
    message = f"flag provided but not defined: -{name}"
    # Case-insensitive first: "-orchsecret" is the commonest slip with Go's case-sensitive names.
    lowered = {n.lower(): n for n in _BY_NAME}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    if close:
        message += f"; did you mean -{lowered[close[0]]}?"
    return FlagError(message + " (lpnode -help lists the flags)")


def _convert(flag: _Flag, used_name: str, raw: str, origin: str) -> object:
    try:
        return flag.convert(raw)
    except ValueError as exc:
        shown = "" if flag.secret else f" {raw!r}"
        kind = "boolean value" if flag.is_bool else "value"
        raise FlagError(f"invalid {kind}{shown} for flag -{used_name}{origin}: {exc}") from None


# --------------------------------------------------------------------------- config object


@dataclass(frozen=True)
class NodeConfig:
    """The node's settings after parsing, defaults and validation.

    Construction validates the combination and fills role-dependent defaults
    (``cli_addr``, ``http_addr``), so every NodeConfig is one lpnode can run.
    """

    orchestrator: bool = False
    transcoder: bool = False
    # The raw -orchSecret value (a path or the secret); load it with lpnode.secret.load_orch_secret.
    orch_secret: str | None = field(default=None, repr=False)
    orch_secret_grace: timedelta = DEFAULT_ORCH_SECRET_GRACE
    orch_addr: tuple[str, ...] = ()
    orch_cert: str | None = None
    service_addr: str | None = None
    http_addr: str | None = None
    cli_addr: str = ""
    max_sessions: int | None = DEFAULT_MAX_SESSIONS  # None = "auto"
    nvidia: str = ""
    monitor: bool = False
    network: str = "offchain"
    price_per_unit: str = "0"
    pixels_per_unit: int = 1
    datadir: str = field(default_factory=lambda: default_datadir(os.environ, "offchain"))
    verbosity: int = DEFAULT_VERBOSITY
    admin_token_file: str | None = None
    auth_token_key_file: str | None = None
    transcoder_name: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    config_file: str | None = None
    eth_url: str | None = field(default=None, repr=False)
    eth_controller: str | None = None
    eth_keystore_path: str | None = None
    eth_acct_addr: str | None = None
    eth_password: str | None = field(default=None, repr=False)
    eth_orch_addr: str | None = None
    reward: bool | None = None  # None: on when the orchestrator is registered
    initialize_round: bool = False
    initialize_round_max_delay: timedelta = timedelta(seconds=30)
    block_polling_interval: int = 5
    max_gas_price: int = 0
    min_gas_price: int = 0
    gas_limit: int = 0
    transaction_timeout: timedelta = timedelta(minutes=5)
    max_transaction_replacements: int = 1
    ticket_ev: int = DEFAULT_TICKET_EV
    max_face_value: int = 0
    price_per_gateway: str | None = None
    auto_adjust_price: bool = True
    auto_adjust_price_ceiling: int = DEFAULT_CEILING_PERCENT
    price_feed_addr: str | None = None
    redeemer: bool = False
    redeemer_addr: str | None = None
    redeemer_token_file: str | None = None
    redeemer_allow_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "orch_addr", tuple(self.orch_addr))
        self._validate()
        object.__setattr__(self, "cli_addr", self._resolved_cli_addr())
        object.__setattr__(self, "http_addr", self._resolved_http_addr())

    @property
    def role(self) -> str:
        """'orchestrator', 'transcoder', 'orchestrator+transcoder', 'reward' or 'redeemer'."""
        if self.orchestrator and self.transcoder:
            return "orchestrator+transcoder"
        if self.redeemer:
            return "redeemer"
        if self.reward_only:
            return "reward"
        return "orchestrator" if self.orchestrator else "transcoder"

    @property
    def on_chain(self) -> bool:
        return self.network != "offchain"

    @property
    def reward_only(self) -> bool:
        """-reward with no other role: the reward service alone (the reward host)."""
        return bool(self.reward) and not (self.orchestrator or self.transcoder)

    @property
    def controller(self) -> str | None:
        """The Controller address: -ethController, or the -network's own."""
        return self.eth_controller or CONTROLLERS.get(self.network)

    @property
    def keystore_path(self) -> str:
        return self.eth_keystore_path or os.path.join(self.datadir, "keystore")

    @property
    def service_uri(self) -> str | None:
        """The URI advertised to gateways, as go-livepeer builds it from -serviceAddr."""
        if self.service_addr is None:
            return None
        return self.service_addr if address.has_scheme(self.service_addr) else f"https://{self.service_addr}"

    def _resolved_cli_addr(self) -> str:
        port = ORCHESTRATOR_CLI_PORT if self.orchestrator or self.reward_only or self.redeemer \
            else TRANSCODER_CLI_PORT
        return _default_addr(self.cli_addr, "127.0.0.1", port)

    def _resolved_http_addr(self) -> str | None:
        if self.redeemer:
            # go-livepeer's redeemer default: loopback; open it to the orchestrators with -httpAddr.
            return _default_addr(self.http_addr or "", "127.0.0.1", ORCHESTRATOR_RPC_PORT)
        if not self.orchestrator:
            # A transcoder only dials out; go-livepeer ignores -httpAddr for it.
            return self.http_addr or None
        port: int | str = ORCHESTRATOR_RPC_PORT
        if self.service_addr is not None:
            # go-livepeer listens on the advertised port by default; with no port there it picks
            # a random one, lpnode uses 8935 instead.
            port = address.split(address.strip_scheme(self.service_addr))[1] or port
        return _default_addr(self.http_addr or "", "0.0.0.0", int(port))

    def _validate(self) -> None:
        self._validate_chain()
        if self.redeemer:
            self._validate_redeemer()
            return
        if not (self.orchestrator or self.transcoder or self.reward_only):
            raise FlagError(
                "no role given: pass -orchestrator, -transcoder, or both, -reward alone for the "
                "reward service, or -redeemer (lpnode does not run a gateway or AI worker)"
            )
        if self.redeemer_addr and not (self.orchestrator and self.on_chain):
            raise FlagError("-redeemerAddr is for an on-chain orchestrator: where it hands its winning tickets")
        if self.transcoder and not self.orchestrator:
            if not self.orch_addr:
                raise FlagError(
                    "-transcoder without -orchestrator works for a remote orchestrator: "
                    "set -orchAddr to its host:port (and -orchSecret to the secret it was started with)"
                )
            if not self.orch_secret:
                raise FlagError(
                    "-transcoder without -orchestrator needs -orchSecret: the secret (or, better, "
                    "the path of a file holding it) that the orchestrator at -orchAddr was started with"
                )
        if self.orchestrator and not self.transcoder and not self.orch_secret:
            raise FlagError(
                "-orchestrator without -transcoder needs -orchSecret, the secret its remote transcoders "
                "use to connect (they are its only way to transcode); or add -transcoder to transcode locally"
            )
        if self.max_sessions is None:
            if self.orchestrator and self.transcoder:
                raise FlagError(
                    "-maxSessions auto cannot be used with both -orchestrator and -transcoder; give a number"
                )
            if not self.orchestrator:
                raise FlagError(
                    "-maxSessions auto is only for an orchestrator with remote transcoders; "
                    "a transcoder needs a number: how many sessions it can run at once"
                )
        elif self.max_sessions < 1:
            raise FlagError(f"-maxSessions must be at least 1 (got {self.max_sessions})")
        if self.pixels_per_unit <= 0:
            raise FlagError(f"-pixelsPerUnit must be greater than 0 (got {self.pixels_per_unit})")
        self._validate_pricing()
        if self.orch_secret_grace < timedelta(0):
            raise FlagError("-orchSecretGrace must not be negative; give a duration like 10m (or 0 for none)")
        if self.verbosity < 0:
            raise FlagError(f"-v must be 0 or more (got {self.verbosity})")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            given, missing = ("-tlsCertFile", "-tlsKeyFile")
            if self.tls_key_file:
                given, missing = missing, given
            raise FlagError(
                f"{given} needs {missing} too: give both the certificate and its private key, or neither"
            )


    def _validate_redeemer(self) -> None:
        if self.orchestrator or self.transcoder or self.reward:
            raise FlagError("-redeemer runs alone: start the orchestrator (with -redeemerAddr), the transcoders "
                            "and the reward service as their own processes")
        if not self.on_chain:
            raise FlagError("-redeemer needs an on-chain -network (and -ethUrl): it redeems tickets on chain")
        if not self.eth_orch_addr:
            raise FlagError("-redeemer needs -ethOrchAddr: the orchestrator whose tickets it redeems "
                            "(tickets to anyone else are refused)")

    def _validate_pricing(self) -> None:
        pricing = self.pricing  # reads -pricePerGateway's file: a bad one stops the start
        if pricing.needs_feed and not self.on_chain:
            raise FlagError(f"a price in a currency (-pricePerUnit {self.price_per_unit}) is converted through an "
                            "on-chain price feed: give the price in wei (or ETH) off chain")
        if pricing.needs_feed and not self.price_feed:
            raise FlagError(f"a price in a currency needs -priceFeedAddr (no default for -network {self.network}): "
                            "the address of an AggregatorV3 feed quoting ETH in that currency")
        if self.price_per_gateway and not self.on_chain:
            raise FlagError("-pricePerGateway needs an on-chain -network: off chain gateways are not identified")
        if not 0 <= self.auto_adjust_price_ceiling <= 1000:
            raise FlagError("-autoAdjustPriceCeiling is a percentage of the base price from 0 to 1000 "
                            f"(got {self.auto_adjust_price_ceiling})")

    @property
    def price_feed(self) -> str | None:
        return self.price_feed_addr or PRICE_FEEDS.get(self.network)

    @property
    def pricing(self) -> Pricing:
        """The prices from -pricePerUnit, -pixelsPerUnit, -pricePerGateway and -autoAdjustPrice."""
        try:
            default = PriceSpec.parse(self.price_per_unit, self.pixels_per_unit)
            gateways = parse_gateway_prices(self.price_per_gateway) if self.price_per_gateway else {}
        except ValueError as exc:
            raise FlagError(str(exc)) from None
        return Pricing(default, gateways, auto_adjust=self.auto_adjust_price and self.on_chain,
                       ceiling_percent=self.auto_adjust_price_ceiling)

    def _validate_chain(self) -> None:
        chain_flags = [FIELD_TO_FLAG[f] for f in ("eth_url", "eth_controller", "eth_keystore_path",
                                                  "eth_acct_addr", "eth_password", "eth_orch_addr")
                       if getattr(self, f)]
        if self.reward:
            chain_flags.append("reward")
        if self.initialize_round:
            chain_flags.append("initializeRound")
        if not self.on_chain:
            if chain_flags:
                raise FlagError(f"-{chain_flags[0]} needs an on-chain -network (e.g. -network "
                                "arbitrum-one-mainnet, with -ethUrl); with -network offchain there is no chain")
            return
        if not self.controller:
            raise FlagError(f"-network {self.network!r} has no known Controller: give its address with "
                            f"-ethController (known networks: offchain, {', '.join(CONTROLLERS)})")
        if not self.eth_url:
            raise FlagError("Need to specify an Ethereum node JSON-RPC URL using -ethUrl "
                            f"(-network {self.network} is on chain)")
        if self.transcoder and not self.orchestrator:
            raise FlagError("a remote transcoder holds no chain account: drop -network and the -eth* flags "
                            "(its orchestrator is the one on chain)")
        if self.block_polling_interval < 1:
            raise FlagError(f"-blockPollingInterval must be at least 1 second (got {self.block_polling_interval})")
        if self.max_transaction_replacements < 0:
            raise FlagError("-maxTransactionReplacements must be 0 or more")
        if self.transaction_timeout <= timedelta(0):
            raise FlagError("-transactionTimeout must be positive, e.g. 5m")
        if self.max_gas_price and self.min_gas_price > self.max_gas_price:
            raise FlagError(f"-minGasPrice {self.min_gas_price} is above -maxGasPrice {self.max_gas_price}")
        if self.ticket_ev <= 0:
            raise FlagError("-ticketEV must be more than 0 wei (go-livepeer's default is "
                            f"{DEFAULT_TICKET_EV})")
        if self.max_face_value and self.max_face_value < self.ticket_ev:
            raise FlagError(f"-maxFaceValue {self.max_face_value} is below -ticketEV {self.ticket_ev}: no ticket "
                            "could carry its expected value; raise -maxFaceValue or lower -ticketEV")


def default_datadir(environ: Mapping[str, str], network: str) -> str:
    """go-livepeer's default data directory: $HOME/.lpData/<network>."""
    home = environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    return os.path.join(home, ".lpData", network)


def _expand_home(path: str, environ: Mapping[str, str]) -> str:
    # The shell expands "~" on the command line but not in env vars or the config file.
    if path == "~" or path.startswith("~/"):
        home = environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
        return home + path[1:]
    return os.path.expanduser(path)


# --------------------------------------------------------------------------- parsing


def _parse_command_line(argv: Sequence[str]) -> dict[str, object]:
    """Go flag package semantics; returns canonical flag name -> converted value."""
    values: dict[str, object] = {}
    previous: _Flag | None = None  # the last flag, for hints about a stray argument right after it
    previous_end = -1
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            if i < len(argv):
                raise _positional(argv, i, previous, after_value=False)
            break
        if len(arg) < 2 or not arg.startswith("-"):
            raise _positional(argv, i - 1, previous, after_value=i - 1 == previous_end)
        body = arg[2:] if arg.startswith("--") else arg[1:]
        if not body or body[0] in "-=":
            raise FlagError(f"bad flag syntax: {arg} (write -name or -name=value)")
        name, has_value, inline = body.partition("=")
        flag = _BY_NAME.get(name)
        if flag is None:
            if name in ("h", "help"):
                raise HelpRequested(usage())
            if name in UNSUPPORTED_FLAGS:
                raise _unsupported(name)
            raise _undefined(name)
        if flag.is_bool:
            # A bare boolean never takes the next argument: "-monitor false" is two arguments.
            raw = inline if has_value else "true"
        elif has_value:
            raw = inline
        elif i < len(argv):
            raw = argv[i]
            i += 1
        else:
            raise FlagError(f"flag needs an argument: -{name} ({flag.kind}); write -{name} VALUE")
        values[flag.name] = _convert(flag, name, raw, "")
        previous, previous_end = flag, i
    return values


def _positional(argv: Sequence[str], index: int, previous: _Flag | None, after_value: bool) -> FlagError:
    if previous is not None and previous.secret and after_value:
        # An unquoted secret containing a space lands here: do not echo its second half.
        what = f"unexpected argument {index + 1} after the -{previous.name} value (not shown)"
    else:
        what = f"unexpected argument {argv[index]!r} (argument {index + 1})"
    if previous is not None and previous.is_bool and after_value:
        hint = f"-{previous.name} is a boolean flag and takes no separate value: write -{previous.name}=false"
    else:
        hint = "quote values that contain spaces"
    return FlagError(f"{what}: lpnode takes no positional arguments; {hint}")


def _apply_environment(environ: Mapping[str, str], values: dict[str, object]) -> None:
    for key, name in sorted(_UNSUPPORTED_BY_ENV.items()):
        if environ.get(key):
            raise FlagError(
                f"environment variable {key} sets -{name}, which is not supported by lpnode yet; unset it"
            )
    for key, flag in _BY_ENV.items():
        raw = environ.get(key, "")
        if raw and flag.name not in values:  # ff ignores empty variables
            values[flag.name] = _convert(flag, flag.name, raw, f" from environment variable {key}")


def _parse_config_line(line: str) -> tuple[str, str | None] | None:
    """ff's PlainParser for one line: (name, value or None for a bare name), None to skip."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    parts = line.split(maxsplit=1)
    if len(parts) == 1:
        return parts[0], None
    value = parts[1]
    comment = re.search(r"\s#", value)
    if comment:
        value = value[: comment.start()].strip()
    return parts[0], value


def _apply_config_file(path: str, environ: Mapping[str, str], values: dict[str, object]) -> None:
    # Whatever the command line or environment set is "provided" and the file cannot override it.
    provided = set(values)
    try:
        with open(_expand_home(path, environ), encoding="utf-8") as f:
            lines = f.read().split("\n")  # as bufio.Scanner; strip() drops "\r"
    except OSError as exc:
        raise FlagError(f"-config {path}: cannot read the config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise FlagError(f"-config {path}: the config file is not UTF-8 text") from None
    for lineno, line in enumerate(lines, start=1):
        parsed = _parse_config_line(line)
        if parsed is None:
            continue
        written, raw = parsed
        where = f"{path}:{lineno}"
        # ff looks a name up as a flag or as its LP_* variable; lpnode also allows leading dashes.
        name = written.lstrip("-")
        flag = _BY_NAME.get(name) or _BY_ENV.get(name)
        if flag is None:
            if name in UNSUPPORTED_FLAGS or name in _UNSUPPORTED_BY_ENV:
                raise FlagError(f"{where}: {_unsupported(_UNSUPPORTED_BY_ENV.get(name, name))}")
            raise FlagError(f"{where}: {_undefined(name or written)}")
        if flag.name == "config":
            raise FlagError(f"{where}: a config file cannot name another config file; remove the 'config' line")
        if raw is None:
            if not flag.is_bool:
                raise FlagError(f"{where}: -{flag.name} needs a value: write '{flag.name} VALUE'")
            raw = "true"
        if flag.name in provided:
            continue
        values[flag.name] = _convert(flag, name, raw, f" in {where}")


def parse_node_flags(argv: Sequence[str], environ: Mapping[str, str]) -> NodeConfig:
    """Build the node's config from arguments (without the program name) and the environment.

    Raises FlagError for any problem, HelpRequested for -h/-help and
    VersionRequested for -version.
    """
    values = _parse_command_line(argv)
    _apply_environment(environ, values)
    config_path = values.get("config")
    if isinstance(config_path, str):
        _apply_config_file(config_path, environ, values)
    if values.get("version"):
        raise VersionRequested()

    kwargs: dict[str, object] = {}
    for flag in _FLAGS:
        if flag.field is not None:
            kwargs[flag.field] = values.get(flag.name, flag.default)
    network = str(kwargs["network"])
    datadir = str(kwargs["datadir"])
    kwargs["datadir"] = _expand_home(datadir, environ) if datadir else default_datadir(environ, network)
    for path_field in ("admin_token_file", "auth_token_key_file", "tls_cert_file", "tls_key_file", "config_file",
                       "orch_cert", "eth_keystore_path"):
        if isinstance(kwargs[path_field], str):
            kwargs[path_field] = _expand_home(str(kwargs[path_field]), environ)
    return NodeConfig(**kwargs)  # type: ignore[arg-type]  # each value checked by its flag's parser


# --------------------------------------------------------------------------- help


def usage() -> str:
    """Help text for ``lpnode -help``."""
    lines = [
        "Usage: lpnode [flags]",
        "",
        "A Livepeer orchestrator and/or transcoder that accepts go-livepeer's flags.",
        "Flags are written -name value, -name=value or --name=value; a boolean flag alone means true.",
        "Every flag can also come from an environment variable LP_<NAME IN CAPITALS> (-orchSecret:",
        "LP_ORCHSECRET) or from the -config file ('name value' per line). The command line beats",
        "the environment, which beats the config file.",
    ]
    group = None
    for flag in _FLAGS:
        if flag.group != group:
            group = flag.group
            lines += ["", f"{group}:"]
        kind = "" if flag.is_bool else f" {flag.kind}"
        lines.append(f"  -{flag.name}{kind}")
        notes = [f"env {env_var_for(flag.name)}"]
        if flag.shown_default and not flag.is_bool:
            notes.insert(0, f"default {flag.shown_default}")
        text = f"{flag.help} ({'; '.join(notes)})"
        lines += textwrap.wrap(text, width=92, initial_indent=" " * 8, subsequent_indent=" " * 8)
    lines += [
        "",
        "  -h, -help",
        "        Print this help and exit.",
        "",
        "Other go-livepeer flags (-ticketEV, -gateway, -aiModels, ...) are not supported yet.",
    ]
    return "\n".join(lines) + "\n"
