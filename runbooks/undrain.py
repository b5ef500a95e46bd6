"""undrain: a drained host back in service: an orchestrator takes sessions and returns to the
load balancer; a transcoder is restarted and registers again with its capacity.
runbooks/undrain.md."""

from __future__ import annotations

import argparse
from functools import partial

from inventory.hosts import ORCHESTRATORS, TRANSCODERS
from lpfleet.remote import RemoteError
from lpfleet.runbook import Plan, Step, Wave
from runbooks._steps import (
    Run,
    known_host,
    orchestrator_back_step,
    restart_transcoder,
    transcoder_back_step,
    verify_step,
)

NAME = "undrain"
SUMMARY = "bring a drained orchestrator or transcoder back into service, proven by a test stream"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", help="the inventory name of the host to bring back")


def plan(run: Run, limit: list[str] | None, args: argparse.Namespace) -> Plan:
    h = known_host(run.fleet, args.host)
    if h.in_group(ORCHESTRATORS):
        steps = [orchestrator_back_step(run, h)]
    elif h.in_group(TRANSCODERS):
        steps = [Step(f"{h.name}:restart", f"{h.name}: restart lpnode (a drained transcoder stays deregistered)",
                      partial(restart_transcoder, run, h.name), h.name, "lpnode's MainPID changed"),
                 transcoder_back_step(run, h)]
    else:
        raise RemoteError(f"{h.name} runs no lpnode (not an orchestrator or transcoder): nothing to undrain")
    steps.append(verify_step(run, h))
    return Plan(NAME, (Wave(h.name, tuple(steps)),))
