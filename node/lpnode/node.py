"""Builds a running node from its configuration: the orchestrator's 8935 service and admin
listener, or a transcoder connected to its orchestrators, or both in one process."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from lpnode import __version__
from lpnode.config import NodeConfig
from lpnode.core.auth import AuthTokens, load_or_create_key
from lpnode.core.credentials import SharedSecret
from lpnode.core.local import LocalTranscoder
from lpnode.core.orchestrator import Orchestrator
from lpnode.lifecycle import OrchestratorLifecycle, TranscoderLifecycle, log_failure
from lpnode.monitor import NodeMetrics
from lpnode.net.address import join, split_host_port
from lpnode.net.channel import Trust
from lpnode.secret import load_orch_secret, load_rpc_url, read_secret_file
from lpnode.server import closing, h2window
from lpnode.server.admin import AdminApp
from lpnode.server.grpc_asgi import GrpcApp
from lpnode.server.listen import StartupError, bind, bound_address
from lpnode.server.service import ServiceApp
from lpnode.server.tls import check_pair, ensure_self_signed
from lpnode.supervisor import Supervisor
from lpnode.transcode.gpu import GpuInfo, preflight, session_budget_warning
from lpnode.transcoder.worker import TranscoderNode

if TYPE_CHECKING:
    from lpnode.eth.client import Chain
    from lpnode.eth.keystore import NodeAccount
    from lpnode.eth.metrics import ChainMetrics
    from lpnode.eth.reward import RewardService
    from lpnode.eth.tx import TxSender
    from lpnode.pm.payments import PaymentMetrics, Payments
    from lpnode.pm.queue import TicketQueue
    from lpnode.pm.redeem import Redeemer

log = logging.getLogger("lpnode")


def _hypercorn(sock: socket.socket, certfile: Path | None = None,
              keyfile: Path | None = None) -> HypercornConfig:
    cfg = HypercornConfig()
    # The node bound the socket itself (server/listen.py); Hypercorn serves it.
    cfg.bind = [f"fd://{sock.detach()}"]
    cfg.accesslog = None
    # Hypercorn's own handler would print every line twice next to lpnode's.
    cfg.errorlog = logging.getLogger("hypercorn.error")
    cfg.include_server_header = False
    # Transcoders hold one long stream open; it must not count as an idle connection.
    cfg.keep_alive_timeout = 75
    # Only idle keep-alive connections are left by the time the listeners stop (the drain saw
    # every segment and rendition through): do not keep the port shut waiting on them.
    cfg.graceful_timeout = 0.5
    # Hypercorn closes an HTTP/2 connection after 1000 requests by default; transcoders and
    # gateways keep one connection for thousands of segments, and the requests caught in that
    # close fail.
    cfg.keep_alive_max_requests = 2**62
    if certfile and keyfile:
        cfg.certfile, cfg.keyfile = str(certfile), str(keyfile)
    return cfg


def advertised_transcoder_name(cfg: NodeConfig, admin_port: int) -> str:
    """How this transcoder names itself to orchestrators (its metric label there):
    -transcoderName, else host name and admin port, unique per process on a host and the same
    across reconnects and restarts."""
    return cfg.transcoder_name or f"{socket.gethostname()}:{admin_port}"


def advertised_uri(cfg: NodeConfig, listen: str) -> str:
    if cfg.service_uri:
        return cfg.service_uri
    host, port = split_host_port(listen)
    return f"https://{join('127.0.0.1' if host in ('0.0.0.0', '', '::') else host, port)}"


# How long SIGTERM waits for segments in flight before the process exits anyway.
DRAIN_DEADLINE_S = 30.0
# After a part of the node failed: a short drain, so the process is restarted within seconds.
FAILURE_DRAIN_S = 2.0
# How long the listeners get to close their connections once the node stops. Only idle
# keep-alive connections are left by then, which clients close only at their next request.
CLOSE_TIMEOUT_S = 0.5


def _secret_reader(cfg: NodeConfig) -> Callable[[], str]:
    """Re-read the secret file at every use (rotation); a literal secret never changes."""
    value = cfg.orch_secret or ""
    secret = load_orch_secret(value, log=log)
    if secret == value:
        return lambda: secret
    return lambda: read_secret_file(value)


def _admin_token(cfg: NodeConfig) -> str | None:
    return read_secret_file(cfg.admin_token_file) if cfg.admin_token_file else None


@dataclass
class Running:
    """What a node runs, by name, and how it stops: drain first (SIGTERM), then close."""
    servers: dict[str, Coroutine[Any, Any, Any]] = field(default_factory=dict)  # end on `stop`
    loops: dict[str, Coroutine[Any, Any, Any]] = field(default_factory=dict)    # run until cancelled
    drain: Callable[[float], Awaitable[Any]] | None = None
    reload: Callable[[], Coroutine[Any, Any, Any]] | None = None
    close: Callable[[], None] | None = None


@dataclass
class ChainParts:
    """An on-chain node's connection, account and transaction sender: one of each, shared by
    the reward service and the ticket redeemer (one account, one nonce sequence)."""
    chain: Chain
    account: NodeAccount
    sender: TxSender
    metrics: ChainMetrics
    orchestrator: str  # the orchestrator's address: -ethOrchAddr, else the account's


def _chain_parts(cfg: NodeConfig, metrics: NodeMetrics) -> ChainParts | None:
    """None off chain. Unlocks the account now, so a wrong password or keystore stops the start
    (KeystoreError)."""
    if not cfg.on_chain:
        return None
    # Imported here: web3 takes a second to import, which an off-chain node (and every
    # restart's closed port) would otherwise pay.
    from lpnode.eth.client import Chain
    from lpnode.eth.keystore import parse_address, unlock
    from lpnode.eth.metrics import ChainMetrics
    from lpnode.eth.tx import GasPolicy, TxSender

    assert cfg.eth_url is not None and cfg.controller is not None  # checked by NodeConfig
    account = unlock(cfg.keystore_path, cfg.eth_acct_addr, cfg.eth_password)
    log.info("account %s unlocked (key file %s)", account.address, account.key_file)
    chain = Chain(load_rpc_url(cfg.eth_url, log=log), cfg.controller, cfg.datadir)
    chain_metrics = ChainMetrics(metrics.registry, metrics.node_type)
    sender = TxSender(chain, account, cfg.datadir, GasPolicy.from_config(cfg), gas_spent=chain_metrics.gas_spent.inc)
    orchestrator = parse_address(cfg.eth_orch_addr, "-ethOrchAddr") if cfg.eth_orch_addr else account.address
    return ChainParts(chain, account, sender, chain_metrics, orchestrator)


def _reward_service(cfg: NodeConfig, parts: ChainParts | None) -> RewardService | None:
    """The reward service of an on-chain node: None off chain or with -reward=false."""
    if parts is None or cfg.reward is False:
        return None
    from lpnode.eth.reward import RewardService, RewardSettings

    settings = RewardSettings(orchestrator=parts.orchestrator, initialize_round=cfg.initialize_round,
                              initialize_round_max_delay_s=cfg.initialize_round_max_delay.total_seconds(),
                              poll_interval_s=float(cfg.block_polling_interval),
                              only_if_registered=cfg.reward is None)
    return RewardService(parts.chain, parts.sender, parts.account, settings, parts.metrics)


def _redeemer_token(cfg: NodeConfig) -> str | None:
    return read_secret_file(cfg.redeemer_token_file) if cfg.redeemer_token_file else None


def _ticket_queue(cfg: NodeConfig, metrics: NodeMetrics) -> tuple[TicketQueue, PaymentMetrics]:
    """The datadir's durable queue of winning tickets and the payment metrics that watch it."""
    from lpnode.pm.payments import PaymentMetrics
    from lpnode.pm.queue import TicketQueue

    queue = TicketQueue(Path(cfg.datadir) / "tickets.sqlite3")
    return queue, PaymentMetrics(metrics.registry, metrics.node_type, queue)


def _redeemer(parts: ChainParts, queue: TicketQueue, payment_metrics: PaymentMetrics, poll_s: float) -> Redeemer:
    """Redeems the queue's due tickets with the node's account, which pays the gas."""
    from lpnode.pm.redeem import Redeemer

    return Redeemer(parts.chain, parts.sender, queue, poll_s, on_redeemed=payment_metrics.redeemed_ticket,
                    on_error=payment_metrics.redeem_error, on_balance=parts.metrics.balance.set)


def _payments(cfg: NodeConfig, parts: ChainParts, orch: Orchestrator,
              metrics: NodeMetrics) -> tuple[Payments, dict[str, Coroutine[Any, Any, Any]]]:
    """Tickets for an on-chain orchestrator: quoting, checking, the durable queue and its
    redemption; returns them and the loops they need."""
    from lpnode.pm.chainwatch import ChainWatch
    from lpnode.pm.payments import Payments
    from lpnode.pm.recipient import Recipient
    from lpnode.pm.ticket import RecipientRandKey

    address = bytes.fromhex(parts.orchestrator[2:])
    queue, payment_metrics = _ticket_queue(cfg, metrics)
    poll = float(cfg.block_polling_interval)
    loops: dict[str, Coroutine[Any, Any, Any]] = {}
    forwarder = None
    if cfg.redeemer_addr:
        from lpnode.pm.remote import Forwarder
        forwarder = Forwarder(cfg.redeemer_addr, queue, _redeemer_token(cfg), poll)
        loops["ticket forwarder"] = forwarder.run()
    else:
        loops["ticket redeemer"] = _redeemer(parts, queue, payment_metrics, poll).run()
    watch = ChainWatch(parts.chain, address, poll, queue.pending_value, price_feed=cfg.price_feed,
                       pricing=orch.pricing, remote_max_float=forwarder.max_float if forwarder else None,
                       metrics=parts.metrics)
    recipient = Recipient(address, RecipientRandKey(cfg.datadir), cfg.network, cfg.ticket_ev,
                          max_face_value=cfg.max_face_value, min_gas_price=cfg.min_gas_price)
    payments = Payments(recipient, watch, queue, orch.pricing, payment_metrics,
                        on_queued=forwarder.wake if forwarder else lambda: None)
    pending = queue.counts().get("pending", 0)
    log.info("tickets to %s: EV %d wei each%s; %d winning tickets waiting for %s", parts.orchestrator,
             cfg.ticket_ev, f", face value at most {cfg.max_face_value} wei" if cfg.max_face_value else "", pending,
             f"the redeemer at {cfg.redeemer_addr}" if forwarder else "redemption")
    return payments, {"chain watch": watch.run(), **loops, "payments housekeeping": payments.housekeeping()}


def _redeemer_node(cfg: NodeConfig, stop: asyncio.Event) -> Running:
    """-redeemer: go-livepeer's TicketRedeemer gRPC for -ethOrchAddr's orchestrators, its own
    queue and account, and an admin listener (/status, /metrics)."""
    from lpnode.pm.chainwatch import ChainWatch
    from lpnode.pm.remote import RedeemerService

    metrics = NodeMetrics("redeemer")
    listen_sock = bind(cfg.http_addr or "127.0.0.1:8935", "-httpAddr")
    admin_sock = bind(cfg.cli_addr, "-cliAddr")
    listen, admin_addr = bound_address(listen_sock), bound_address(admin_sock)
    parts = _chain_parts(cfg, metrics)
    assert parts is not None
    cert, key = ensure_self_signed(Path(cfg.datadir), split_host_port(listen)[0])
    queue, payment_metrics = _ticket_queue(cfg, metrics)
    poll = float(cfg.block_polling_interval)
    watch = ChainWatch(parts.chain, bytes.fromhex(parts.orchestrator[2:]), poll, queue.pending_value,
                       metrics=parts.metrics)
    redeemer = _redeemer(parts, queue, payment_metrics, poll)
    token = _redeemer_token(cfg)
    if token is None and not cfg.redeemer_allow_from:
        log.warning("no -redeemerTokenFile: anyone who reaches %s can queue tickets and read max floats, as with "
                    "go-livepeer's redeemer; give orchestrators and this redeemer a shared token file", listen)
    service = RedeemerService(parts.orchestrator, queue, watch, token, cfg.redeemer_allow_from, metrics.refused)

    def status() -> dict[str, Any]:
        return {"version": __version__, "role": cfg.role, "account": parts.account.address,
                "orchestrator": parts.orchestrator, "tickets": queue.counts(), "chainError": watch.error}
    admin = AdminApp(status, metrics.registry if cfg.monitor else None, token=_admin_token(cfg),
                     refused=metrics.refused)
    # Tests and scripts that ask for port 0 read the ports from this line.
    log.info("redeemer %s for %s, account %s, %d tickets pending, listening on %s, admin on %s", __version__,
             parts.orchestrator, parts.account.address, queue.counts().get("pending", 0), listen, admin_addr)
    return Running(
        servers={f"redeemer listener {listen}": serve(GrpcApp(service.methods), _hypercorn(listen_sock, cert, key),
                                                      shutdown_trigger=stop.wait),
                 f"admin listener {admin_addr}": serve(admin, _hypercorn(admin_sock), shutdown_trigger=stop.wait)},
        loops={"chain watch": watch.run(), "ticket redeemer": redeemer.run()})


def _reward_node(cfg: NodeConfig, stop: asyncio.Event) -> Running:
    """-reward alone: the reward service and its admin listener (/status, /metrics)."""
    metrics = NodeMetrics("reward")
    admin_sock = bind(cfg.cli_addr, "-cliAddr")
    admin_addr = bound_address(admin_sock)
    service = _reward_service(cfg, _chain_parts(cfg, metrics))
    assert service is not None
    admin = AdminApp(lambda: {"version": __version__, "role": cfg.role, "chain": service.status()},
                     metrics.registry if cfg.monitor else None, token=_admin_token(cfg), refused=metrics.refused)
    log.info("reward service %s for %s, admin on %s", __version__, service.settings.orchestrator, admin_addr)
    return Running(servers={f"admin listener {admin_addr}": serve(admin, _hypercorn(admin_sock),
                                                                  shutdown_trigger=stop.wait)},
                   loops={"reward service": service.run()})


def _orchestrator(cfg: NodeConfig, stop: asyncio.Event, gpus: list[GpuInfo]) -> Running:
    metrics = NodeMetrics("orch")
    listen_sock = bind(cfg.http_addr or "0.0.0.0:8935", "-httpAddr")
    admin_sock = bind(cfg.cli_addr, "-cliAddr")
    listen, admin_addr = bound_address(listen_sock), bound_address(admin_sock)
    uri = advertised_uri(cfg, listen)
    if cfg.tls_cert_file and cfg.tls_key_file:
        cert, key = Path(cfg.tls_cert_file), Path(cfg.tls_key_file)
    else:
        cert, key = ensure_self_signed(Path(cfg.datadir), split_host_port(uri)[0])
    try:
        check_pair(cert, key)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    metrics.set_certificate(cert)
    h2window.install()
    read_secret = _secret_reader(cfg) if cfg.orch_secret else None
    secret = SharedSecret(read_secret(), cfg.orch_secret_grace.total_seconds()) if read_secret else None
    orch = Orchestrator(service_uri=uri, metrics=metrics, secret=secret,
                        tokens=AuthTokens(load_or_create_key(Path(cfg.auth_token_key_file or
                                                               Path(cfg.datadir) / "authtoken.key"))),
                        pricing=cfg.pricing,
                        # With -transcoder, -maxSessions is the local transcoder's capacity and
                        # remote transcoders add theirs; alone it caps the orchestrator's total.
                        session_limit=None if cfg.transcoder else cfg.max_sessions)
    if cfg.transcoder:
        orch.add_worker(LocalTranscoder(cfg.max_sessions or 10, gpus=[g.index for g in gpus]))
        if gpus:
            metrics.watch_gpus(gpus)
    parts = _chain_parts(cfg, metrics)
    reward = _reward_service(cfg, parts)
    payments, payment_loops = _payments(cfg, parts, orch, metrics) if parts else (None, {})

    def chain_status() -> dict[str, Any]:
        return {**(reward.status() if reward else {}),
                **({"payments": payments.status()} if payments else {})}
    life = OrchestratorLifecycle(orch, cfg.role, secret, read_secret, cfg.orch_secret_grace,
                                 chain_status=chain_status if parts else None,
                                 currency_prices=bool(parts and cfg.price_feed),
                                 service_port=split_host_port(listen)[1])
    admin = AdminApp(life.status, metrics.registry if cfg.monitor else None, token=_admin_token(cfg),
                     actions={"drain": life.drain, "undrain": life.undrain, "handoff": life.handoff,
                              "reload": life.reload, "setPrice": life.set_price},
                     refused=metrics.refused, ready=life.ready)
    # Tests and scripts that ask for port 0 read the ports from this line.
    log.info("orchestrator %s listening on %s, advertised as %s, admin on %s",
             __version__, listen, orch.service_uri, admin_addr)
    return Running(
        servers={f"service listener {listen}": serve(ServiceApp(orch, payments), _hypercorn(listen_sock, cert, key),
                                                     shutdown_trigger=stop.wait),
                 f"admin listener {admin_addr}": serve(admin, _hypercorn(admin_sock),
                                                       shutdown_trigger=stop.wait)},
        loops={"housekeeping": orch.housekeeping(), **({"reward service": reward.run()} if reward else {}),
               **payment_loops},
        drain=life.stop_drain, reload=life.reload, close=life.close)


def _trust(cfg: NodeConfig) -> Trust:
    if not cfg.orch_cert:
        log.warning("no -orchCert: this transcoder sends the orchSecret to whichever server "
                    "answers at %s, unverified, as go-livepeer does; give -orchCert with the "
                    "orchestrator's certificate (its -datadir/cert.pem) so that an impostor "
                    "cannot collect it", ",".join(cfg.orch_addr))
        return Trust()
    try:
        trust = Trust.from_file(cfg.orch_cert)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    log.info("orchestrator certificates from %s: only servers presenting one get the orchSecret",
             cfg.orch_cert)
    return trust


def _transcoder(cfg: NodeConfig, stop: asyncio.Event, gpus: list[GpuInfo]) -> Running:
    metrics = NodeMetrics("trcr")
    admin_sock = bind(cfg.cli_addr, "-cliAddr")
    admin_addr = bound_address(admin_sock)
    if gpus:
        metrics.watch_gpus(gpus)
    capacity = cfg.max_sessions or 1
    node = TranscoderNode(list(cfg.orch_addr), _secret_reader(cfg), capacity,
                          metrics=metrics, gpus=[g.index for g in gpus],
                          name=advertised_transcoder_name(cfg, admin_sock.getsockname()[1]),
                          trust=_trust(cfg))
    life = TranscoderLifecycle(node, cfg.role, DRAIN_DEADLINE_S)
    admin = AdminApp(life.status, metrics.registry if cfg.monitor else None,
                     token=_admin_token(cfg), actions={"drain": life.drain}, refused=metrics.refused)
    log.info("transcoder %s for orchestrators %s, capacity %d, %s, admin on %s", __version__,
             ",".join(cfg.orch_addr), capacity,
             f"NVENC on GPU {','.join(str(g.index) for g in gpus)}" if gpus else "x264 (CPU)",
             admin_addr)
    return Running(servers={f"admin listener {admin_addr}": serve(
                                admin, _hypercorn(admin_sock), shutdown_trigger=stop.wait)},
                   loops={"orchestrator links": node.run()}, drain=life.stop_drain)


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Once the node stops, Hypercorn cancels the connection tasks that outlive its grace
    period; asyncio's stream callbacks (Python 3.11) log each cancellation as an error with a
    traceback, which would read as a crash in every clean stop."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


async def run_node(cfg: NodeConfig) -> int:
    """Run until SIGTERM/SIGINT, which drains (bounded by DRAIN_DEADLINE_S) and exits 0, or
    until a part of the node fails, which exits 1 so that systemd restarts it. SIGHUP reloads
    the orchSecret on an orchestrator."""
    gpus = preflight(cfg.nvidia) if cfg.nvidia else []
    # Renditions per stream are the gateway's choice; warn about the smallest case (one).
    if gpus and (warning := session_budget_warning(gpus, cfg.max_sessions or 1)):
        log.warning("%s", warning)
    stop, terminate = asyncio.Event(), asyncio.Event()
    closing.install()
    if cfg.redeemer:
        node = _redeemer_node(cfg, stop)
    elif cfg.reward_only:
        node = _reward_node(cfg, stop)
    else:
        node = (_orchestrator if cfg.orchestrator else _transcoder)(cfg, stop, gpus)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, terminate.set)
    if node.reload is not None:
        reload = node.reload

        def on_hup() -> None:
            loop.create_task(reload()).add_done_callback(log_failure("reload"))
        loop.add_signal_handler(signal.SIGHUP, on_hup)

    supervisor = Supervisor()
    servers = [supervisor.start(name, job) for name, job in node.servers.items()]
    for name, job in node.loops.items():
        supervisor.start(name, job)
    failure = await supervisor.run_until(terminate)
    if failure is None:
        log.info("shutting down: draining first (at most %.0fs)", DRAIN_DEADLINE_S)
    else:
        log.error("%s; stopping so that systemd restarts lpnode", failure)
    if node.drain is not None:
        await node.drain(DRAIN_DEADLINE_S if failure is None else FAILURE_DRAIN_S)
    loop.set_exception_handler(_quiet_cancellations)
    stop.set()
    if node.close is not None:
        node.close()
    _, lingering = await asyncio.wait(servers, timeout=CLOSE_TIMEOUT_S)
    if lingering:
        closing.hang_up()
        await asyncio.wait(servers, timeout=CLOSE_TIMEOUT_S)
    await supervisor.cancel_all(timeout=CLOSE_TIMEOUT_S)
    log.info("stopped" if failure is None else "stopped after a failure")
    return 0 if failure is None else 1
