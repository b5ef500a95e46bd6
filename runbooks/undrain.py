"""undrain: a drained host back in service: an orchestrator takes sessions and returns to the
load balancer; a transcoder is restarted and registers again with its capacity.
runbooks/undrain.md."""

from __future__ import annotations

import argparse
from functools import partial

from inventory.hosts import ORCHESTRATORS, TRANSCODERS
from lpfleet.remote import RemoteError
from lpfleet.runbook import Plan, Step, Wave
from runbooks._steps import Run, known_host, orchestrator_back, restart_transcoder, transcoder_back, verify_stream

NAME = "undrain"
SUMMARY = "bring a drained orchestrator or transcoder back into service, proven by a test stream"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", help="the inventory name of the host to bring back")


def plan(run: Run, limit: list[str] | None, args: argparse.Namespace) -> Plan:
    h = known_host(run.fleet, args.host)
    if h.in_group(ORCHESTRATORS):
        steps = [Step(f"{h.name}:back", f"{h.name}: undrain, back in rotation", partial(orchestrator_back, run, h.name),
                      h.name, "taking sessions, UP at each balancer")]
    elif h.in_group(TRANSCODERS):
        steps = [Step(f"{h.name}:restart", f"{h.name}: restart lpnode (a drained transcoder stays deregistered)",
                      partial(restart_transcoder, run, h.name), h.name, "lpnode's MainPID changed"),
                 Step(f"{h.name}:back", f"{h.name}: registered again", partial(transcoder_back, run, h.name), h.name,
                      "registered at its orchestrator with its inventory capacity")]
    else:
        raise RemoteError(f"{h.name} runs no lpnode (not an orchestrator or transcoder): nothing to undrain")
    steps.append(Step(f"{h.name}:verify", f"{h.name}: verify", partial(verify_stream, run, h.name), h.name,
                      "a short test stream, every segment good"))
    return Plan(NAME, (Wave(h.name, tuple(steps)),))
