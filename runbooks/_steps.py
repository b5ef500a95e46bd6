"""The steps runbooks are made of, each an action and the live signal that proves it: a drain
proven by work in flight reaching zero, a node proven back by its registration and capacity at
its orchestrator and its state in the balancer, a change proven by a short test stream. No step
sleeps to prove anything; each waits on its signal, bounded by the runbook settings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from inventory.hosts import ORCHESTRATORS, REWARD, TRANSCODERS, HostSpec
from lpfleet import haproxy
from lpfleet.remote import Fleet, RemoteError, wait_for
from lpfleet.runbook import Step, StepFailed
from roles.haproxy import HaproxySettings
from roles.node import SERVICE
from roles.reward import RewardSettings
from runbooks.settings import RunbookSettings


@dataclass
class Run:
    """What one run's steps share: the fleet, and what earlier steps found out."""

    fleet: Fleet
    log: Callable[[str], None] = print
    restart: bool = False            # replace every process even where nothing changed
    skip: set[str] = field(default_factory=set)      # hosts the deploy would not change
    pids: dict[str, int] = field(default_factory=dict)  # lpnode's MainPID before the change

    def settings(self, name: str) -> RunbookSettings:
        return RunbookSettings.from_data(name, self.fleet.hosts[name].data)


def _timed(started: float) -> str:
    return f"{time.monotonic() - started:.1f}s"


def _registered(run: Run, transcoder: str) -> dict | None:
    orchestrator = str(run.fleet.hosts[transcoder].data["orchestrator"])
    name = run.fleet.name_at_orchestrator(transcoder)
    return next((t for t in run.fleet.status(orchestrator)["transcoders"] if t["name"] == name), None)


def _rotation_is(send: haproxy.Send, server: str, wanted: bool) -> bool:
    """Whether the balancer has ``server`` in rotation (UP, not merely going up) as ``wanted``."""
    state = haproxy.servers(send)[server]
    return state.status == "UP" if wanted else not state.in_rotation


# ------------------------------------------------------------------ actions


def rewarded_this_round(run: Run, name: str) -> str:
    """The reward host calls reward once a round; a keystore change restarts that service, so
    it waits until this round's call is made."""
    port = RewardSettings.from_data(name, run.fleet.hosts[name].data).cli_port

    def done() -> dict | None:
        chain = run.fleet.admin(name, "/status", port=port).json().get("chain", {})
        return chain if chain.get("rewarded") or chain.get("active") is False else None
    chain = wait_for(done, run.settings(name).return_timeout, f"{name}: this round's reward call")
    return f"round {chain.get('round')} rewarded" if chain.get("rewarded") else "not active this round"


def changes(run: Run, name: str) -> str:
    if run.restart:
        return "--restart: replaced whether or not anything changed"
    pending = run.fleet.pending_changes(name)
    if not pending:
        run.skip.add(name)
        return "the deploy changes nothing here: its next steps are skipped"
    return f"{len(pending)} change(s): {'; '.join(pending[:3])}{' ...' if len(pending) > 3 else ''}"


def drain_transcoder(run: Run, name: str) -> str:
    if name in run.skip:
        return "skipped"
    fleet, started = run.fleet, time.monotonic()
    orchestrator = str(fleet.hosts[name].data["orchestrator"])
    run.pids[name] = fleet.main_pid(name, SERVICE)
    fleet.act(name, "drain")
    wait_for(lambda: fleet.status(name)["inFlight"] == 0 and _registered(run, name) is None,
             run.settings(name).drain_timeout,
             f"{name}: work in flight reaching 0 and deregistered from {orchestrator}")
    return f"in flight 0, deregistered from {orchestrator} after {_timed(started)}"


def out_of_rotation(run: Run, name: str) -> str:
    """An orchestrator drained, so its /ready fails and every balancer takes it out."""
    if name in run.skip:
        return "skipped"
    fleet, started = run.fleet, time.monotonic()
    run.pids[name] = fleet.main_pid(name, SERVICE)
    fleet.act(name, "drain")
    for lb in fleet.balancers:
        wait_for(partial(_rotation_is, fleet.haproxy(lb.name), name, False), run.settings(name).drain_timeout,
                 f"{lb.name}: {name} out of rotation")
    where = ", ".join(lb.name for lb in fleet.balancers) or "no balancer"
    return f"draining; out of rotation at {where} after {_timed(started)}"


def hand_off(run: Run, name: str) -> str:
    """Its gateways moved (POST /handoff) and the work it had finished."""
    if name in run.skip:
        return "skipped"
    fleet, started = run.fleet, time.monotonic()
    fleet.act(name, "handoff")
    status = wait_for(lambda: (s := fleet.status(name))["gatewayConnections"] == 0 and s["inFlight"] == 0 and s,
                      run.settings(name).drain_timeout, f"{name}: gateway connections and work in flight reaching 0")
    return f"0 gateway connections, 0 in flight after {_timed(started)} ({status['sessions']} idle sessions left)"


def update(run: Run, name: str, always_restart: bool) -> str:
    """The fleet deploy for this host alone; lpnode restarted if the deploy did not replace it
    and ``always_restart`` (a drained transcoder stays deregistered until it restarts) or --restart."""
    if name in run.skip:
        return "skipped"
    fleet = run.fleet
    before = run.pids.get(name) or fleet.main_pid(name, SERVICE)
    if fleet.hosts[name].in_group(REWARD):
        # A new build restarts the reward service too: never before this round's reward call.
        run.log(f"{name}: {rewarded_this_round(run, name)}")
    deployed = fleet.deploy([name], run.log)
    after = fleet.main_pid(name, SERVICE)
    if after == before and (always_restart or run.restart):
        fleet.restart(name, SERVICE)
        after = fleet.main_pid(name, SERVICE)
    if not after:
        raise StepFailed(f"{name}: {SERVICE} is not running after the deploy (systemctl status {SERVICE})")
    return f"{deployed}; lpnode pid {before} -> {after}" + (" (not replaced)" if after == before else "")


def transcoder_back(run: Run, name: str) -> str:
    if name in run.skip:
        return "skipped"
    started, want = time.monotonic(), run.fleet.capacity(name)
    orchestrator = run.fleet.hosts[name].data["orchestrator"]
    seen = wait_for(lambda: (t := _registered(run, name)) and (t["capacity"] >= want if want else t["capacity"]) and t,
                    run.settings(name).return_timeout,
                    f"{name}: registered at {orchestrator} with capacity {want or 'above 0'}")
    return f"registered at {orchestrator} with capacity {seen['capacity']} after {_timed(started)}"


def expected_capacity(fleet: Fleet, orchestrator: HostSpec) -> int:
    """Its transcoders' capacity as the inventory has it, its own included when it transcodes."""
    own = fleet.capacity(orchestrator.name) if orchestrator.in_group(TRANSCODERS) else 0
    return own + sum(fleet.capacity(t.name) for t in fleet.transcoders_of(orchestrator.name))


def orchestrator_back(run: Run, name: str) -> str:
    """Taking sessions (undrained if the deploy kept the process), its transcoders back with
    their capacity, and in rotation at every balancer."""
    if name in run.skip:
        return "skipped"
    fleet, started = run.fleet, time.monotonic()
    timeout = run.settings(name).return_timeout
    if wait_for(lambda: fleet.status(name), timeout, f"{name}: /status answering")["draining"]:
        fleet.act(name, "undrain")
    want = expected_capacity(fleet, fleet.hosts[name])
    status = wait_for(lambda: (s := fleet.status(name))["capacity"] >= want and not s["draining"] and s,
                      timeout, f"{name}: taking sessions with capacity {want}")
    for lb in fleet.balancers:
        wait_for(partial(_rotation_is, fleet.haproxy(lb.name), name, True), timeout,
                 f"{lb.name}: {name} back in rotation (UP)")
    return (f"capacity {status['capacity']} from {len(status['transcoders'])} transcoder(s), in rotation at "
            f"{', '.join(lb.name for lb in fleet.balancers) or 'no balancer'} after {_timed(started)}")


def front(fleet: Fleet, host: str) -> str:
    """Where gateways send streams: the first balancer, else the host's orchestrator."""
    if fleet.balancers:
        lb = fleet.balancers[0]
        return f"{lb.address}:{HaproxySettings.from_data(lb.name, lb.data).port}"
    spec = fleet.hosts[host]
    orchestrator = fleet.hosts[str(spec.data.get("orchestrator", host))]
    return f"{orchestrator.address}:{fleet.settings(orchestrator.name).service_port}"


def verify_stream(run: Run, name: str) -> str:
    """A short test stream through the fleet's front door; every segment must come back good."""
    if name in run.skip:
        return "skipped"
    s = run.settings(name)
    address = front(run.fleet, name)
    cmd = [sys.executable, "-m", "lpnode.cli", "test-stream", "-orchAddr", address,
           "-segments", str(s.stream_segments), "-quiet", *s.stream_flags]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    lines = p.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise StepFailed(f"test stream through {address}: no summary (exit {p.returncode}): "
                         f"{(p.stdout + p.stderr).strip()[-500:]}") from None
    if p.returncode != 0 or summary["failed"] or summary["succeeded"] != s.stream_segments:
        raise StepFailed(f"test stream through {address}: {summary['succeeded']}/{summary['segments']} good, "
                         f"errors {summary['errors']}")
    return f"test stream through {address}: {summary['succeeded']}/{summary['segments']} good, " \
           f"p50 {summary['latency_ms']['p50']} ms"


def restart_transcoder(run: Run, name: str) -> str:
    """A drained transcoder has stopped reconnecting: a restart brings it back."""
    before = run.fleet.main_pid(name, SERVICE)
    run.fleet.restart(name, SERVICE)
    return f"lpnode pid {before} -> {run.fleet.main_pid(name, SERVICE)}"


# ------------------------------------------------------------------ step lists


def changes_step(run: Run, h: HostSpec) -> Step:
    return Step(f"{h.name}:changes", f"{h.name}: what the deploy would change (pyinfra --dry)",
                partial(changes, run, h.name), h.name, "pyinfra's detected changes")


def transcoder_drain_step(run: Run, t: HostSpec) -> Step:
    o = t.data.get("orchestrator")
    return Step(f"{t.name}:drain", f"{t.name}: drain (no new work from {o})", partial(drain_transcoder, run, t.name),
                t.name, f"its in-flight count 0 and gone from {o}'s /status")


def transcoder_back_step(run: Run, t: HostSpec) -> Step:
    o = t.data.get("orchestrator")
    return Step(f"{t.name}:back", f"{t.name}: back at {o}", partial(transcoder_back, run, t.name), t.name,
                f"registered at {o} with its inventory capacity")


def out_of_rotation_step(run: Run, o: HostSpec) -> Step:
    lbs = ", ".join(lb.name for lb in run.fleet.balancers) or "no balancer"
    return Step(f"{o.name}:out", f"{o.name}: drain, out of the balancer ({lbs})",
                partial(out_of_rotation, run, o.name), o.name,
                "its /ready 404 and each balancer showing it out of rotation")


def hand_off_step(run: Run, o: HostSpec) -> Step:
    return Step(f"{o.name}:handoff", f"{o.name}: hand its gateways to the other orchestrators",
                partial(hand_off, run, o.name), o.name, "its gateway connections and in-flight count 0")


def orchestrator_back_step(run: Run, o: HostSpec) -> Step:
    return Step(f"{o.name}:back", f"{o.name}: back in rotation", partial(orchestrator_back, run, o.name), o.name,
                "taking sessions, its transcoders' capacity back, UP at each balancer")


def verify_step(run: Run, h: HostSpec) -> Step:
    return Step(f"{h.name}:verify", f"{h.name}: verify", partial(verify_stream, run, h.name), h.name,
                "a short test stream, every segment good")


def transcoder_roll(run: Run, t: HostSpec, with_changes: bool = True) -> list[Step]:
    return [*([changes_step(run, t)] if with_changes else []),
            transcoder_drain_step(run, t),
            Step(f"{t.name}:update", f"{t.name}: deploy (pyinfra --limit {t.name}), lpnode replaced",
                 partial(update, run, t.name, True), t.name, "lpnode's MainPID changed"),
            transcoder_back_step(run, t),
            verify_step(run, t)]


def orchestrator_roll(run: Run, o: HostSpec, with_changes: bool = True) -> list[Step]:
    return [*([changes_step(run, o)] if with_changes else []),
            out_of_rotation_step(run, o),
            hand_off_step(run, o),
            Step(f"{o.name}:update", f"{o.name}: deploy (pyinfra --limit {o.name})",
                 partial(update, run, o.name, False), o.name, "lpnode's MainPID changed (with --restart)"),
            orchestrator_back_step(run, o),
            verify_step(run, o)]


def remote_transcoder(fleet: Fleet, name: str, fix: str) -> tuple[HostSpec, str]:
    """The inventory's transcoder host ``name`` (not an orchestrator) and its orchestrator;
    RemoteError with ``fix`` when it is not one."""
    h = known_host(fleet, name)
    if not h.in_group(TRANSCODERS) or h.in_group(ORCHESTRATORS):
        raise RemoteError(f"{h.name} is not a transcoder host in the inventory: {fix}")
    return h, str(h.data.get("orchestrator"))


def known_host(fleet: Fleet, name: str) -> HostSpec:
    if name not in fleet.hosts:
        raise RemoteError(f"{name} is not a host of {fleet.inventory}; its hosts: {', '.join(fleet.hosts)}")
    return fleet.hosts[name]
