"""`lpnode`: go-livepeer's flags for the node itself; extra tools are subcommands."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import uvloop

from lpnode import __version__
from lpnode.config import FlagError, HelpRequested, VersionRequested, parse_node_flags
from lpnode.secret import SecretError
from lpnode.server.listen import StartupError
from lpnode.transcode.gpu import GpuPreflightError

SUBCOMMANDS = ("test-stream", "check-config", "chain")


def _logging(verbosity: int) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbosity >= 6 else logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    # Hypercorn and httpx log every connection at INFO; operators want lpnode's own lines.
    for noisy in ("hpack", "httpx", "httpcore", "hypercorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def check_config(args: list[str]) -> int:
    """`lpnode check-config FILE`: parse and check a -config file as start-up would (every flag,
    and how they combine), without starting anything. The deploy checks a new config with it
    before it goes live."""
    if len(args) != 1:
        print("usage: lpnode check-config FILE", file=sys.stderr)
        return 2
    try:
        parse_node_flags(["-config", args[0]], {})
    except FlagError as exc:
        print(f"lpnode: {args[0]}: {exc}", file=sys.stderr)
        return 2
    print(f"{args[0]}: ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "test-stream":
        from lpnode.gateway import teststream
        return teststream.main(argv[1:])
    if argv and argv[0] == "check-config":
        return check_config(argv[1:])
    if argv and argv[0] == "chain":
        from lpnode.eth import commands
        return commands.main(argv[1:])
    try:
        cfg = parse_node_flags(argv, os.environ)
    except HelpRequested as exc:
        print(exc)
        return 0
    except VersionRequested:
        print(f"lpnode {__version__}")
        return 0
    except FlagError as exc:
        print(f"lpnode: {exc}", file=sys.stderr)
        print("run 'lpnode -help' for the list of flags", file=sys.stderr)
        return 2
    _logging(cfg.verbosity)
    from lpnode.node import run_node
    try:
        if cfg.orchestrator:
            # uvloop takes a third off the orchestrator's CPU per segment (docs/benchmarks.md).
            # Transcoders stay on asyncio's own loop, which is what grpc.aio supports.
            return uvloop.run(run_node(cfg))
        return asyncio.run(run_node(cfg))
    except (SecretError, GpuPreflightError, StartupError) as exc:
        logging.getLogger("lpnode").error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
