"""drain: one host out of service for maintenance, its work moved first. An orchestrator leaves
the load balancer and hands its gateways to the others; a transcoder finishes what it has and
deregisters. `undrain` brings it back. runbooks/drain.md."""

from __future__ import annotations

import argparse
from functools import partial

from inventory.hosts import ORCHESTRATORS, TRANSCODERS
from lpfleet.remote import RemoteError
from lpfleet.runbook import Plan, Step, Wave
from runbooks._steps import Run, drain_transcoder, hand_off, known_host, out_of_rotation

NAME = "drain"
SUMMARY = "take one orchestrator or transcoder out of service, its work moved elsewhere first"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", help="the inventory name of the host to drain")


def plan(run: Run, limit: list[str] | None, args: argparse.Namespace) -> Plan:
    h = known_host(run.fleet, args.host)
    steps: tuple[Step, ...]
    if h.in_group(ORCHESTRATORS):
        steps = (Step(f"{h.name}:out", f"{h.name}: drain, out of the balancer", partial(out_of_rotation, run, h.name),
                      h.name, "each balancer showing it out of rotation"),
                 Step(f"{h.name}:handoff", f"{h.name}: hand its gateways to the other orchestrators",
                      partial(hand_off, run, h.name), h.name, "its gateway connections and in-flight count 0"))
    elif h.in_group(TRANSCODERS):
        steps = (Step(f"{h.name}:drain", f"{h.name}: drain", partial(drain_transcoder, run, h.name), h.name,
                      "its in-flight count 0 and gone from its orchestrator"),)
    else:
        raise RemoteError(f"{h.name} runs no lpnode (not an orchestrator or transcoder): nothing to drain")
    return Plan(NAME, (Wave(h.name, steps),))
