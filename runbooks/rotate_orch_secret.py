"""rotate-orch-secret: a new orchSecret with no transcoder dropped, in three phases checked one by
one: every orchestrator accepts the old and the new secret, every transcoder switches and is seen
registered with the new one, every orchestrator drops the old one; at the end the old secret is
refused. The new secret is generated (or read from --new-secret-file) and never printed.
runbooks/rotate-orch-secret.md."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
from functools import partial
from pathlib import Path

import grpc

from inventory.hosts import HostSpec
from inventory.secret_checks import secret_source
from lpfleet.remote import RemoteError, wait_for
from lpfleet.runbook import Plan, Step, StepFailed, Wave
from runbooks._steps import Run, transcoder_drain_step, update, verify_stream

NAME = "rotate-orch-secret"
SUMMARY = "replace the orchSecret fleet-wide in three checked phases, no transcoder dropped"

# What an orchestrator answers a registration offering no capacity: the secret is checked first.
ACCEPTED = "zero capacity"
REFUSED = "invalid secret"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--new-secret-file", help="read the new secret from this file (default: 32 random bytes, "
                                              "base64), e.g. one your secret store wrote")


class Rotation:
    """The secret file the deploy reads (orch_secret_file), the old secret kept beside it
    (``<file>.previous``, 0600) until the rotation is over."""

    def __init__(self, path: Path, new_secret_file: str | None) -> None:
        self.path = path
        self.previous = path.with_name(path.name + ".previous")
        self.new_secret_file = new_secret_file

    def old(self) -> str:
        return self.previous.read_text().strip()

    def new(self) -> str:
        return self.path.read_text().strip()

    def write(self) -> str:
        if self.previous.exists():
            return f"the new secret is already in {self.path} (the old one in {self.previous}): carrying on"
        current = self.path.read_text()
        if self.new_secret_file:
            new = Path(self.new_secret_file).read_text().strip()
            if not new:
                raise StepFailed(f"--new-secret-file {self.new_secret_file} is empty")
        else:
            new = base64.b64encode(secrets.token_bytes(32)).decode()
        if new == current.strip():
            raise StepFailed("the new secret is the current one: give another --new-secret-file")
        _write_secret(self.previous, current, exclusive=True)
        _write_secret(self.path, new + "\n")
        return f"new secret written to {self.path}; the old one kept in {self.previous} until the end"

    def finish(self) -> str:
        if self.previous.exists():
            self.previous.write_bytes(b"\0" * self.previous.stat().st_size)
            self.previous.unlink()
        return f"{self.previous} removed: only the new secret is left"


def _write_secret(path: Path, text: str, exclusive: bool = False) -> None:
    """0600 from the first byte; atomically replaced unless ``exclusive`` (then created)."""
    target = path if exclusive else path.with_name(f".{path.name}.new")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC), 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if not exclusive:
        os.replace(target, path)


async def _registration(address: str, secret: str) -> str:
    from lpnode.net import lp_rpc_pb2 as pb
    from lpnode.net import lp_rpc_pb2_grpc as rpc
    from lpnode.net.channel import secure_channel

    channel = await secure_channel(address)
    try:
        call = rpc.TranscoderStub(channel).RegisterTranscoder(pb.RegisterRequest(secret=secret, capacity=0),
                                                              timeout=10)
        async for _ in call:
            return "registered"   # an orchestrator that took zero capacity: not lpnode's
        return "closed"
    except grpc.aio.AioRpcError as exc:
        return exc.details() or exc.code().name
    finally:
        await channel.close()


def answer(run: Run, orchestrator: str, secret: str) -> str:
    """What ``orchestrator`` answers a registration with ``secret`` (capacity 0, so nothing
    registers): ACCEPTED or REFUSED."""
    h = run.fleet.hosts[orchestrator]
    return asyncio.run(_registration(f"{h.address}:{run.fleet.settings(orchestrator).service_port}", secret))


def _expect(run: Run, orchestrator: str, rotation: Rotation, old: str, new: str) -> str:
    seen = {"old": answer(run, orchestrator, rotation.old()), "new": answer(run, orchestrator, rotation.new())}
    want = {"old": old, "new": new}
    if seen != want:
        raise RemoteError(f"{orchestrator}: the old secret gets {seen['old']!r}, the new one {seen['new']!r}; "
                          f"expected {want['old']!r} and {want['new']!r}")
    return f"old secret: {seen['old']}; new secret: {seen['new']}"


def accept_both(run: Run, rotation: Rotation, o: str) -> str:
    deployed = run.fleet.deploy([o], run.log)
    status = run.fleet.status(o)["orchSecret"]
    seen = wait_for(lambda: _expect(run, o, rotation, ACCEPTED, ACCEPTED), 30, f"{o} accepting both secrets")
    return f"{deployed}; {seen} (old accepted for {status['previousAcceptedSeconds']:.0f}s more)"


def on_new_secret(run: Run, t: str) -> str:
    fleet = run.fleet
    o = str(fleet.hosts[t].data["orchestrator"])
    name = fleet.name_at_orchestrator(t)

    def registered() -> dict | None:
        status = fleet.status(o)
        generation = status["orchSecret"]["generation"]
        return next((w for w in status["transcoders"] if w["name"] == name and w["secretGeneration"] == generation
                     and w["capacity"] >= (fleet.capacity(t) or 1)), None)
    seen = wait_for(registered, run.settings(t).return_timeout, f"{t}: registered at {o} with the new secret")
    return f"registered at {o} with the new secret (generation {seen['secretGeneration']}), capacity {seen['capacity']}"


def drop_old(run: Run, rotation: Rotation, o: str) -> str:
    run.fleet.act(o, "reload", dropPrevious="true")
    return wait_for(lambda: _expect(run, o, rotation, REFUSED, ACCEPTED), 30, f"{o} refusing the old secret")


def all_refuse_the_old(run: Run, rotation: Rotation, orchestrators: list[HostSpec]) -> str:
    seen = [f"{o.name}: {_expect(run, o.name, rotation, REFUSED, ACCEPTED)}" for o in orchestrators]
    return "; ".join(seen)


def plan(run: Run, limit: list[str] | None, args: argparse.Namespace) -> Plan:
    fleet = run.fleet
    if limit:
        raise RemoteError("rotate-orch-secret covers the whole fleet (every orchestrator and transcoder share the "
                          "secret): run it without --limit")
    nodes = fleet.orchestrators + fleet.remote_transcoders
    sources = {secret_source(h.data, "orch_secret") for h in nodes}
    if len(sources) != 1 or None in sources or next(iter(sources))[0] != "file":  # type: ignore[index]
        raise RemoteError("rotate-orch-secret writes the new secret where the deploy reads it, so every orchestrator "
                          "and transcoder must read one orch_secret_file (they read: "
                          f"{', '.join(sorted(f'{k} {v}' for k, v in filter(None, sources)))}). Fix: point them all at "
                          "one file (0600) on this machine")
    path = Path(next(iter(sources))[1])  # type: ignore[index]
    rotation = Rotation(path, args.new_secret_file)
    orchestrators = fleet.orchestrators
    waves = [Wave("the new secret", (Step("secret:new", f"write a new secret to {path}, keep the old one beside it",
                                          rotation.write, None, "never printed; 0600"),))]
    waves.append(Wave("phase 1: every orchestrator accepts both", tuple(
        Step(f"{o.name}:accept-both", f"{o.name}: deploy the new secret (SIGHUP: old and new accepted)",
             partial(accept_both, run, rotation, o.name), o.name,
             f"a registration with either secret gets {ACCEPTED!r} (checked past the secret)")
        for o in orchestrators)))
    for t in fleet.remote_transcoders:
        waves.append(Wave(f"phase 2: transcoder {t.name} switches", (
            transcoder_drain_step(run, t),
            Step(f"{t.name}:update", f"{t.name}: deploy the new secret, lpnode replaced",
                 partial(update, run, t.name, True), t.name, "lpnode's MainPID changed"),
            Step(f"{t.name}:new-secret", f"{t.name}: registered with the new secret",
                 partial(on_new_secret, run, t.name), t.name,
                 "its orchestrator's /status: this transcoder on the current secret generation, full capacity"),
        )))
    waves.append(Wave("phase 3: every orchestrator drops the old", tuple(
        Step(f"{o.name}:drop-old", f"{o.name}: refuse the old secret (POST /reload dropPrevious)",
             partial(drop_old, run, rotation, o.name), o.name, f"the old secret gets {REFUSED!r}")
        for o in orchestrators)))
    waves.append(Wave("check", (
        Step("secret:old-refused", "every orchestrator refuses the old secret",
             partial(all_refuse_the_old, run, rotation, orchestrators), None, "a registration with each secret"),
        Step("secret:verify", "verify", partial(verify_stream, run, orchestrators[0].name), None,
             "a short test stream, every segment good"),
        Step("secret:finish", "forget the old secret", rotation.finish, None, f"{rotation.previous} removed"),
    )))
    return Plan(NAME, tuple(waves))
