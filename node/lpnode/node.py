"""Builds a running node from its configuration: the orchestrator's 8935 service and admin
listener, or a transcoder connected to its orchestrators, or both in one process."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from lpnode import __version__
from lpnode.config import NodeConfig
from lpnode.core.auth import AuthTokens, load_or_create_key
from lpnode.core.credentials import SharedSecret
from lpnode.core.local import LocalTranscoder
from lpnode.core.orchestrator import Orchestrator, Price
from lpnode.monitor import NodeMetrics
from lpnode.net.channel import split_host_port
from lpnode.secret import load_orch_secret, read_secret_file
from lpnode.server.admin import AdminApp
from lpnode.server.service import ServiceApp
from lpnode.server.tls import ensure_self_signed
from lpnode.transcode.gpu import preflight
from lpnode.transcoder.worker import TranscoderNode

log = logging.getLogger("lpnode")


def _hypercorn(bind: str, certfile: Path | None = None, keyfile: Path | None = None) -> HypercornConfig:
    cfg = HypercornConfig()
    cfg.bind = [bind]
    cfg.accesslog = None
    cfg.include_server_header = False
    # Transcoders hold one long stream open; it must not count as an idle connection.
    cfg.keep_alive_timeout = 75
    cfg.graceful_timeout = 5
    if certfile and keyfile:
        cfg.certfile, cfg.keyfile = str(certfile), str(keyfile)
    return cfg


def advertised_uri(cfg: NodeConfig, listen: str) -> str:
    if cfg.service_uri:
        return cfg.service_uri
    host, port = split_host_port(listen)
    return f"https://{'127.0.0.1' if host in ('0.0.0.0', '', '::') else host}:{port}"


def _secret_reader(cfg: NodeConfig):
    """The transcoder re-reads a secret file before every connection attempt (rotation)."""
    value = cfg.orch_secret
    secret = load_orch_secret(value, log=log)
    if secret == value:
        return lambda: secret
    return lambda: read_secret_file(value)


async def run_node(cfg: NodeConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    nvidia = bool(cfg.nvidia)
    gpus = preflight(cfg.nvidia) if nvidia else []
    gpu = gpus[0].index if gpus else None
    started = time.time()
    servers: list[Any] = []   # end by themselves once `stop` is set
    loops: list[Any] = []     # run until cancelled
    on_stop: list[Any] = []
    status: dict[str, Any] = {"version": __version__, "role": cfg.role}

    if cfg.orchestrator:
        metrics = NodeMetrics("orch")
        listen = cfg.http_addr
        if cfg.tls_cert_file and cfg.tls_key_file:
            cert, key = Path(cfg.tls_cert_file), Path(cfg.tls_key_file)
        else:
            cert, key = ensure_self_signed(Path(cfg.datadir), split_host_port(
                advertised_uri(cfg, listen))[0])
        tokens = AuthTokens(load_or_create_key(Path(cfg.datadir) / "authtoken.key"))
        orch = Orchestrator(service_uri=advertised_uri(cfg, listen), tokens=tokens, metrics=metrics,
                            price=Price(cfg.price_per_unit, cfg.pixels_per_unit),
                            session_limit=cfg.max_sessions)
        secret = SharedSecret(load_orch_secret(cfg.orch_secret, log=log)) if cfg.orch_secret else None
        if cfg.transcoder:
            orch.add_worker(LocalTranscoder(cfg.max_sessions or 10, nvidia=nvidia, gpu=gpu))

        def orch_status() -> dict[str, Any]:
            now = time.time()
            return {**status, "uptimeSeconds": round(now - started, 1), "serviceURI": orch.service_uri,
                    "sessions": orch.pool.load, "capacity": orch.pool.capacity,
                    "transcoders": [{"address": w.address, "capacity": w.capacity, "load": w.load,
                                     "connectedSince": round(w.connected_at, 3),
                                     "connectedSeconds": round(now - w.connected_at, 1)}
                                    for w in orch.pool.snapshot()]}

        servers += [serve(ServiceApp(orch, secret), _hypercorn(listen, cert, key),
                          shutdown_trigger=stop.wait),
                    serve(AdminApp(orch_status, metrics.registry if cfg.monitor else None),
                          _hypercorn(cfg.cli_addr), shutdown_trigger=stop.wait)]
        loops.append(orch.housekeeping())
        # Transcoder streams never end on their own; close them so the server can stop.
        on_stop.append(orch.close)
        log.info("orchestrator %s listening on %s, advertised as %s, admin on %s",
                 __version__, listen, orch.service_uri, cfg.cli_addr)
    else:
        metrics = NodeMetrics("trcr")
        node = TranscoderNode(list(cfg.orch_addr), _secret_reader(cfg), cfg.max_sessions or 1,
                              metrics=metrics, nvidia=nvidia, gpu=gpu)
        loops.append(node.run())
        servers.append(serve(AdminApp(lambda: {**status, **node.status()},
                                      metrics.registry if cfg.monitor else None),
                             _hypercorn(cfg.cli_addr), shutdown_trigger=stop.wait))
        log.info("transcoder %s for orchestrators %s, capacity %d, %s", __version__,
                 ",".join(cfg.orch_addr), cfg.max_sessions or 1, "NVENC" if nvidia else "x264 (CPU)")

    server_tasks = [asyncio.ensure_future(s) for s in servers]
    loop_tasks = [asyncio.ensure_future(job) for job in loops]
    await stop.wait()
    log.info("shutting down")
    for task in loop_tasks:
        task.cancel()
    for close in on_stop:
        close()
    await asyncio.gather(*loop_tasks, return_exceptions=True)
    await asyncio.wait(server_tasks, timeout=10)
