"""The `lpfleet` command.

    lpfleet lab up [--hosts o1,t1,t2,mon1] [--extra N]
    lpfleet lab down [--purge]
    lpfleet lab status [--json]
    lpfleet lab ssh HOST [COMMAND...]
    lpfleet lab rewards [--rounds N]
    lpfleet lab stream [-- TEST-STREAM FLAGS...]
    lpfleet lab stop HOST [--hard] | start HOST | cut HOST | restore HOST
    lpfleet runbook list
    lpfleet status -i INVENTORY [--json]
    lpfleet runbook NAME -i INVENTORY [--limit HOSTS] [--dry] [--yes] [--resume] [options]

Each top-level command group registers itself in COMMANDS; more groups (deploy, runbook, ...)
plug in the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable


def _lab_log(quiet: bool):
    from lab.util import quiet_log, stderr_log

    return quiet_log if quiet else stderr_log


def _cmd_lab_up(args: argparse.Namespace) -> int:
    import lab

    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()] if args.hosts else None
    report = lab.up(hosts, args.extra, timeout=args.timeout, log=_lab_log(args.quiet))
    st = report.state
    if not args.quiet:
        _print_hosts(st)
        print(f"state: {lab.state.path()}")
        print(f"ssh:   lpfleet lab ssh {st.hosts[0].name}   (or ssh -F {st.ssh_config} {st.hosts[0].name})")
        print("inventory: pyinfra inventory/lab.py ...")
    return 0


def _print_hosts(st) -> None:
    print(f"{'HOST':<6} {'GROUP':<14} ADDRESS")
    for h in st.hosts:
        print(f"{h.name:<6} {h.group:<14} {h.address}")


def _cmd_lab_down(args: argparse.Namespace) -> int:
    import lab

    removed = lab.down(purge=args.purge, log=_lab_log(args.quiet))
    if not args.quiet:
        print(f"lab down ({len(removed)} hosts removed{'; state dir purged' if args.purge else ''})")
    return 0


def _cmd_lab_status(args: argparse.Namespace) -> int:
    import lab

    try:
        rows = lab.status(probe_ssh=not args.no_ssh)
    except lab.LabNotUp as e:
        if args.json:
            print(json.dumps({"up": False, "hosts": []}))
        else:
            print(str(e))
        return 3
    if args.json:
        print(json.dumps({
            "up": True,
            "state_file": str(lab.state.path()),
            "hosts": [
                {"name": r.name, "address": r.address, "group": r.group, "state": r.state,
                 "running": r.running, "link": "up" if r.link_up else "cut", "ssh": r.ssh}
                for r in rows
            ],
        }, indent=2))
        return 0
    print(f"{'HOST':<6} {'GROUP':<14} {'ADDRESS':<12} {'STATE':<8} {'LINK':<5} SSH")
    for r in rows:
        ssh = "-" if args.no_ssh else ("ok" if r.ssh else "no")
        print(f"{r.name:<6} {r.group:<14} {r.address:<12} {r.state:<8} "
              f"{'up' if r.link_up else 'cut':<5} {ssh}")
    return 0


def _cmd_lab_ssh(args: argparse.Namespace) -> int:
    import lab

    st = lab.state.load()
    cmd = args.command
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    remote = " ".join(cmd) if cmd else None
    argv = lab.ssh_argv(args.host, remote, state=st, tty=remote is None and sys.stdin.isatty())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)
    return 127  # not reached


def _cmd_lab_rewards(args: argparse.Namespace) -> int:
    import lab
    from lab import chain as lab_chain
    from lab.util import stderr_log

    info = lab.load().chain
    if not info:
        print("lpfleet lab rewards: the lab has no chain: run lpfleet lab up", file=sys.stderr)
        return 1
    return 0 if lab_chain.watch_rewards(args.rounds, info, print if not args.quiet else stderr_log) else 1


def _cmd_lab_stream(args: argparse.Namespace) -> int:
    import lab
    from lab import chain as lab_chain
    from lab.util import stderr_log

    state = lab.load()
    if not state.chain:
        print("lpfleet lab stream: the lab has no chain: run lpfleet lab up", file=sys.stderr)
        return 1
    flags = args.flags[1:] if args.flags[:1] == ["--"] else args.flags
    return lab_chain.paid_stream(state, flags, print if not args.quiet else stderr_log)


def _cmd_lab_stop(args: argparse.Namespace) -> int:
    import lab

    lab.stop(args.host, hard=args.hard, log=_lab_log(args.quiet))
    return 0


def _cmd_lab_start(args: argparse.Namespace) -> int:
    import lab

    lab.start(args.host, timeout=args.timeout, log=_lab_log(args.quiet))
    return 0


def _cmd_lab_cut(args: argparse.Namespace) -> int:
    import lab

    lab.cut(args.host, log=_lab_log(args.quiet))
    return 0


def _cmd_lab_restore(args: argparse.Namespace) -> int:
    import lab

    lab.restore(args.host, log=_lab_log(args.quiet))
    return 0


def _add_lab(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="the local lab of Debian hosts (systemd-nspawn)",
                       description="The local lab: real Debian 12 hosts with systemd and sshd on "
                       "a private bridge 10.77.0.0/24 (see docs/lab.md). Needs root.")
    labsub = p.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)

    def cmd(name: str, fn: Callable, help: str, host: bool = False) -> argparse.ArgumentParser:
        c = labsub.add_parser(name, help=help, description=help)
        c.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        if host:
            c.add_argument("host", help="host name (o1, t1, ...) or address")
        c.set_defaults(func=fn)
        return c

    c = cmd("up", _cmd_lab_up, "build (first time) and boot the lab; safe to re-run")
    c.add_argument("--hosts", help="comma-separated host names, e.g. o1,t1,t2,mon1 (the lab "
                   "becomes exactly these; names: oN, tN, monN, rN)")
    c.add_argument("--extra", type=int, help="N more transcoders (t3, t4, ...) beyond --hosts or "
                   "the default o1,t1,t2,mon1; at most 8 hosts in all")
    c.add_argument("--timeout", type=float, default=180, help="seconds to wait per host (180)")
    c = cmd("down", _cmd_lab_down, "remove every trace of the lab (keeps the cached rootfs)")
    c.add_argument("--purge", action="store_true",
                   help="also remove the cached rootfs, lab SSH key and secrets (the state dir)")
    c = cmd("status", _cmd_lab_status, "list hosts, addresses and state")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--no-ssh", action="store_true", help="don't probe sshd")
    c = labsub.add_parser("ssh", help="a shell, or run COMMAND, on a host (exit status passed through)")
    c.add_argument("host")
    c.add_argument("command", nargs=argparse.REMAINDER)
    c.set_defaults(func=_cmd_lab_ssh)
    c = cmd("rewards", _cmd_lab_rewards, "watch rounds pass on the lab chain and the reward calls "
            "in each; exit 1 unless each round was rewarded exactly once")
    c.add_argument("--rounds", type=int, default=3, help="how many rounds (3)")
    c = cmd("stream", _cmd_lab_stream, "a test stream through o1 that pays with tickets as the lab's gateway, "
            "then every winning ticket seen redeemed on the lab chain; exit 1 unless all were, once each")
    c.add_argument("flags", nargs=argparse.REMAINDER,
                   help="lpnode test-stream flags after --: lpfleet lab stream -- -segments 10")
    c = cmd("stop", _cmd_lab_stop, "power a host off (disk kept)", host=True)
    c.add_argument("--hard", action="store_true", help="a power cut instead of a clean shutdown")
    c = cmd("start", _cmd_lab_start, "boot a powered-off host and wait for sshd", host=True)
    c.add_argument("--timeout", type=float, default=120)
    cmd("cut", _cmd_lab_cut, "cut a host's network link (it keeps running)", host=True)
    cmd("restore", _cmd_lab_restore, "restore a cut link", host=True)


def _cmd_chain_up(args: argparse.Namespace) -> int:
    from lpfleet import chain

    print(json.dumps(chain.up(host=args.host, port=args.port, block_time=args.block_time,
                              round_length=args.round_length)))
    return 0


def _cmd_chain_down(args: argparse.Namespace) -> int:
    from lpfleet import chain

    stopped = chain.down(args.port)
    print(f"chain on port {args.port}: {'stopped' if stopped else 'was not running'}")
    return 0


def _cmd_chain_mine(args: argparse.Namespace) -> int:
    from lpfleet import chain

    print(f"block {chain.mine(args.blocks, args.port)}")
    return 0


def _cmd_chain_status(args: argparse.Namespace) -> int:
    from lpfleet import chain

    print(json.dumps(chain.description(args.port)))
    return 0


def _add_chain(sub: argparse._SubParsersAction) -> None:
    from lpfleet import chain

    p = sub.add_parser("chain", help="a local Livepeer chain (anvil + the protocol contracts)",
                       description="A local Livepeer chain for tests and the lab: anvil from npm with "
                                   "the project's protocol contracts (lpfleet/chain.py).")
    chainsub = p.add_subparsers(dest="chain_command", metavar="COMMAND", required=True)

    def cmd(name: str, fn: Callable, help: str) -> argparse.ArgumentParser:
        c = chainsub.add_parser(name, help=help, description=help)
        c.add_argument("--port", type=int, default=chain.DEFAULT_PORT, help="the RPC port (default %(default)s)")
        c.set_defaults(func=fn)
        return c

    c = cmd("up", _cmd_chain_up, "start the chain (or find it running); the last line is its description (JSON)")
    c.add_argument("--host", default="127.0.0.1", help="the address to listen on (default %(default)s)")
    c.add_argument("--block-time", type=float, default=None, metavar="S",
                   help="a block every S seconds (default: a block per transaction, and `mine`)")
    c.add_argument("--round-length", type=int, default=chain.DEFAULT_ROUND_LENGTH, metavar="N",
                   help="blocks per round (default %(default)s)")
    cmd("down", _cmd_chain_down, "stop the chain")
    c = cmd("mine", _cmd_chain_mine, "advance the chain by N blocks")
    c.add_argument("blocks", type=int, metavar="N")
    cmd("status", _cmd_chain_status, "the running chain's description (JSON)")


def _cmd_runbook_list(args: argparse.Namespace) -> int:
    from runbooks import RUNBOOKS

    for name, module in RUNBOOKS.items():
        print(f"{name:<22} {module.SUMMARY}")
    return 0


def _cmd_runbook_run(args: argparse.Namespace) -> int:
    from lpfleet.remote import opened
    from lpfleet.runner import run_plan
    from runbooks import RUNBOOKS
    from runbooks._steps import Run

    module = RUNBOOKS[args.runbook]
    limit = [h.strip() for h in args.limit.split(",") if h.strip()] if args.limit else None
    with opened(args.inventory) as fleet:
        unknown = [h for h in limit or [] if h not in fleet.hosts]
        if unknown:
            print(f"lpfleet: --limit names hosts not in {args.inventory}: {', '.join(unknown)}", file=sys.stderr)
            return 2
        plan = module.plan(Run(fleet), limit, args)
        return run_plan(fleet, plan, yes=args.yes, dry=args.dry, resume=args.resume)


def _add_runbook(sub: argparse._SubParsersAction) -> None:
    from runbooks import RUNBOOKS

    p = sub.add_parser("runbook", help="on-call runbooks against an inventory (runbooks/)",
                       description="Run an on-call runbook against the fleet of an inventory: its plan is "
                                   "printed first and confirmed, one fleet-wide lock is held, every step is "
                                   "journaled, and the first failure stops the run (--resume continues).")
    rsub = p.add_subparsers(dest="runbook", metavar="RUNBOOK", required=True)
    rsub.add_parser("list", help="the runbooks, one line each").set_defaults(func=_cmd_runbook_list)
    for name, module in RUNBOOKS.items():
        c = rsub.add_parser(name, help=module.SUMMARY, description=(module.__doc__ or "").strip())
        c.add_argument("-i", "--inventory", required=True, help="the inventory file the deploy uses")
        c.add_argument("--limit", help="only these hosts (comma-separated inventory names)")
        c.add_argument("--dry", action="store_true", help="print the plan and stop")
        c.add_argument("--yes", action="store_true", help="do not ask before running")
        c.add_argument("--resume", action="store_true", help="continue the last run from the step that failed")
        module.arguments(c)
        c.set_defaults(func=_cmd_runbook_run)


def _cmd_status(args: argparse.Namespace) -> int:
    from lpfleet.remote import opened
    from lpfleet.status import collect, render

    with opened(args.inventory) as fleet:
        view = collect(fleet)
    print(json.dumps(view, indent=2) if args.json else render(view))
    return 0


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the fleet on one screen: orchestrators, transcoders, balancers, alerts",
                       description="Read-only: each orchestrator's state, sessions and capacity, the transcoders "
                                   "registered at it against the inventory, each balancer's server states and the "
                                   "alerts firing in Alertmanager.")
    p.add_argument("-i", "--inventory", required=True, help="the inventory file the deploy uses")
    p.add_argument("--json", action="store_true", help="the same as JSON")
    p.set_defaults(func=_cmd_status)


#: Top-level command groups: name -> function adding its subparser.
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "lab": _add_lab,
    "chain": _add_chain,
    "runbook": _add_runbook,
    "status": _add_status,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpfleet", description="Livepeer fleet tooling.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # LabError and friends: a message, not a traceback
        from lab.config import LabError
        from lpfleet.chain import ChainError
        from lpfleet.runbook import StepFailed

        if isinstance(e, (LabError, ChainError, StepFailed)):
            print(f"lpfleet: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
