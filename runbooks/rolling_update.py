"""rolling-update: the current build (or, with --restart, a restart) through the fleet one host at
a time: the transcoders first, canary first, then the orchestrators, each taken out of the load
balancer and its gateways handed to the others first. runbooks/rolling-update.md."""

from __future__ import annotations

import argparse

from lpfleet.runbook import Plan, Wave
from runbooks._steps import Run, orchestrator_roll, transcoder_roll

NAME = "rolling-update"
SUMMARY = "roll the current build (or --restart) through transcoders, canary first, then orchestrators"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--restart", action="store_true",
                   help="replace every lpnode process even where the deploy changes nothing")


def plan(run: Run, limit: list[str] | None, args: argparse.Namespace) -> Plan:
    run.restart = bool(args.restart)
    fleet = run.fleet
    transcoders = [t for t in fleet.remote_transcoders if not limit or t.name in limit]
    orchestrators = [o for o in fleet.orchestrators if not limit or o.name in limit]
    waves = []
    if transcoders:
        waves.append(Wave(f"canary: {transcoders[0].name}",
                          tuple(transcoder_roll(run, transcoders[0], with_changes=not run.restart))))
    for t in transcoders[1:]:
        waves.append(Wave(f"transcoder {t.name}", tuple(transcoder_roll(run, t, with_changes=not run.restart))))
    for o in orchestrators:
        waves.append(Wave(f"orchestrator {o.name}", tuple(orchestrator_roll(run, o, with_changes=not run.restart))))
    return Plan(NAME, tuple(waves))
