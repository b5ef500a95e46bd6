"""What an operator (or systemd) does to a running node, in one place per role: its /status,
a drain (admin action: no new work, keep what runs), a stop's drain (SIGTERM: finish what is in
hand, then exit) and, on an orchestrator, reloading the orchSecret (SIGHUP or admin action) and
changing the price (admin action), and handing its gateways to the other orchestrators behind
the same load balancer (admin action, after a drain)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from lpnode import __version__
from lpnode.core.credentials import SharedSecret
from lpnode.core.orchestrator import Orchestrator
from lpnode.pm.pricing import PriceSpec
from lpnode.server import closing
from lpnode.supervisor import describe
from lpnode.transcoder.worker import TranscoderNode

log = logging.getLogger("lpnode")

# How long after a segment's results a stopping orchestrator still expects its gateway to come
# for the renditions (go-livepeer gateways fetch them at once).
RENDITION_PICKUP_S = 5.0
# A gateway connection idle this long has its segment's renditions: GOAWAY cannot catch a
# download (go-livepeer gateways fetch them the moment the segment's answer arrives).
HANDOFF_IDLE_S = 0.5


class OrchestratorLifecycle:
    def __init__(self, orch: Orchestrator, role: str, secret: SharedSecret | None = None,
                 read_secret: Callable[[], str] | None = None,
                 grace: timedelta = timedelta(0),
                 chain_status: Callable[[], dict[str, Any]] | None = None,
                 currency_prices: bool = False, service_port: int = 0) -> None:
        self.orch = orch
        self._service_port = service_port
        self._handoff: asyncio.Task[None] | None = None
        self._currency_prices = currency_prices  # a price feed is configured
        self._chain_status = chain_status
        self._role = role
        self._secret = secret
        self._read_secret = read_secret
        self._grace = grace
        self._started = time.time()

    def status(self) -> dict[str, Any]:
        orch, now = self.orch, time.time()
        workers = {w.id: w for w in orch.pool.workers()}
        return {"version": __version__, "role": self._role,
                "uptimeSeconds": round(now - self._started, 1),
                "serviceURI": orch.service_uri, "draining": orch.draining,
                "inFlight": orch.in_flight,
                "gatewayConnections": len(self._gateway_connections()), "sessions": orch.pool.load,
                "capacity": orch.pool.capacity,
                "transcoders": [{"name": w.name, "address": w.address, "capacity": w.capacity,
                                 "load": w.load, "inFlight": w.in_flight, "draining": w.draining,
                                 "penalised": w.penalised,
                                 # Remote transcoders: the orchSecret generation they registered with.
                                 "secretGeneration": getattr(workers.get(w.id), "secret_generation", None),
                                 "connectedSince": round(w.connected_at, 3),
                                 "connectedSeconds": round(now - w.connected_at, 1)}
                                for w in orch.pool.snapshot()],
                "price": str(self.orch.pricing.default),
                **({"orchSecret": {"generation": self._secret.generation,
                                   "previousAcceptedSeconds": round(self._secret.previous_accepted_s(), 1)}}
                   if self._secret is not None else {}),
                **({"chain": self._chain_status()} if self._chain_status else {})}

    async def reload(self, dropPrevious: str = "false") -> dict[str, Any]:  # noqa: N803 - API name
        """Re-read the orchSecret: a new one becomes current, the old one is accepted for the
        grace period. With ``dropPrevious`` (admin action, the last phase of a rotation) the
        previous one is refused from now on and transcoders still using it are dropped."""
        if self._secret is None or self._read_secret is None:
            return {"reloaded": False, "reason": "no -orchSecret"}
        if dropPrevious.lower() in ("true", "1", "yes"):
            dropped = self._secret.drop_previous()
            log.info("orchSecret: the previous secret is no longer accepted%s",
                     "" if dropped else " (none was)")
            return {"reloaded": True, "rotated": False, "droppedPrevious": dropped,
                    "generation": self._secret.generation}
        rotated = self._secret.rotate(self._read_secret())
        if rotated:
            log.info("orchSecret rotated; the previous one is accepted for %s more", self._grace)
        else:
            log.info("orchSecret reloaded: unchanged")
        return {"reloaded": True, "rotated": rotated, "graceSeconds": self._grace.total_seconds()}

    def ready(self) -> bool:
        """Taking new sessions: not draining, not stopping (the load balancer's health check)."""
        return not (self.orch.draining or self.orch.closing)

    async def set_price(self, pricePerUnit: str, pixelsPerUnit: str = "1",  # noqa: N803 - go-livepeer's names
                        gateway: str = "") -> dict[str, Any]:
        """POST /setPrice: a new default price, or a gateway's own with ``gateway``. Streams
        already paying keep the price of their first payment."""
        try:
            spec = PriceSpec.parse(pricePerUnit, int(pixelsPerUnit))
        except ValueError as exc:
            raise ValueError(f"{exc} (pixelsPerUnit {pixelsPerUnit!r})") from None
        if spec.needs_feed and not self._currency_prices:
            raise ValueError(f"{pricePerUnit}: a currency price needs the chain and -priceFeedAddr; give wei or ETH")
        address = gateway.lower().removeprefix("0x")
        if gateway and not re.fullmatch(r"[0-9a-f]{40}", address):
            raise ValueError(f"gateway {gateway!r} is not an Ethereum address")
        old = self.orch.pricing.spec(bytes.fromhex(address) if gateway else None)
        self.orch.pricing.set(spec, bytes.fromhex(address) if gateway else None)
        log.info("price%s changed from %s to %s", f" for gateway {gateway}" if gateway else "", old, spec)
        return {"gateway": gateway or None, "price": str(spec), "previous": str(old)}

    async def drain(self) -> dict[str, Any]:
        """Admin action: no new sessions; running ones go on (/ready answers 404, so a load
        balancer sends no new connections; POST /handoff then moves the gateways it has)."""
        if not self.orch.draining:
            log.info("draining: no new sessions; /ready answers 404")
        self.orch.draining = True
        return self.status()

    async def undrain(self) -> dict[str, Any]:
        """Admin action: take new sessions again (the end of a maintenance)."""
        if self.orch.closing:
            raise ValueError("the node is stopping; it takes new sessions once restarted")
        if self.orch.draining:
            log.info("undrained: taking new sessions; /ready answers 200")
        self.orch.draining = False
        return self.status()

    async def handoff(self, idleSeconds: str = str(HANDOFF_IDLE_S)) -> dict[str, Any]:  # noqa: N803 - API name
        """Admin action, once drained and out of the load balancer's rotation: close each
        gateway's connection at its next idle moment (HTTP/2 GOAWAY), so its next segment goes
        through the balancer to another orchestrator. Transcoders' connections stay."""
        if not self.orch.draining:
            raise ValueError("hand off a drained orchestrator only: POST /drain first and wait until the "
                             "load balancer shows it draining, or its gateways come straight back")
        try:
            idle = float(idleSeconds)
        except ValueError:
            raise ValueError(f"idleSeconds {idleSeconds!r} is not a number of seconds") from None
        if self._handoff is None or self._handoff.done():
            log.info("handing off %d gateway connection(s): each closes once idle for %.1fs",
                     len(self._gateway_connections()), idle)
            self._handoff = asyncio.create_task(self._hand_off(idle))
            self._handoff.add_done_callback(log_failure("handoff"))
        return self.status()

    async def _hand_off(self, idle_s: float) -> None:
        # For as long as the drain lasts: a gateway that still reaches this node (its balancer
        # has not seen the drain yet) is moved too.
        while self.orch.draining:
            if sent := await closing.hand_off(self._service_port, idle_s, self._transcoder_hosts()):
                log.info("handed off %d gateway connection(s)", sent)
            await asyncio.sleep(0.1)

    def _transcoder_hosts(self) -> set[str]:
        return {w.address.rsplit(":", 1)[0] for w in self.orch.pool.snapshot()}

    def _gateway_connections(self) -> list[closing.Connection]:
        if not self._service_port:
            return []
        return closing.connections(self._service_port, self._transcoder_hosts())

    async def stop_drain(self, deadline_s: float) -> dict[str, Any]:
        """Before exiting: new segments are refused with 503 (gateways retry them, here once
        restarted or at another orchestrator); the ones in hand finish, and their renditions
        are fetched."""
        orch = self.orch
        orch.draining = orch.closing = True
        log.info("draining: no new segments; %d in flight", orch.in_flight)
        end = time.monotonic() + deadline_s
        while ((orch.in_flight or orch.store.awaiting_pickup(RENDITION_PICKUP_S))
               and time.monotonic() < end):
            await asyncio.sleep(0.05)
        return self.status()

    def close(self) -> None:
        # Transcoder streams never end on their own; close them so the server can stop.
        self.orch.close()


class TranscoderLifecycle:
    def __init__(self, node: TranscoderNode, role: str, drain_deadline_s: float) -> None:
        self.node = node
        self._role = role
        self._deadline_s = drain_deadline_s
        self._draining: asyncio.Task[bool] | None = None

    def status(self) -> dict[str, Any]:
        return {"version": __version__, "role": self._role, **self.node.status()}

    async def drain(self) -> dict[str, Any]:
        """Admin action: ask every orchestrator for no new work, finish what is in hand, then
        deregister. Runs on after the reply; /status shows how far it got."""
        if self._draining is None:
            self.node.draining = True
            self._draining = asyncio.create_task(self.node.drain(self._deadline_s))
            self._draining.add_done_callback(log_failure("drain"))
        return self.status()

    async def stop_drain(self, deadline_s: float) -> bool:
        return await self.node.drain(deadline_s)


def log_failure(name: str) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s failed: %s", name, describe(exc), exc_info=exc)
    return done
