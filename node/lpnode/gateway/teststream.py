"""`lpnode test-stream`: prove a node works by sending it a stream the way a gateway does.

Each rendition is downloaded and decoded, and its size and frame count checked. The last line
printed is a JSON summary; the exit status is non-zero if any segment failed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import grpc
import httpx

from lpnode.eth.units import eth
from lpnode.gateway.client import GatewayClient, SegmentRejected
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.pm.sender import PaymentSender
from lpnode.transcode.engine import output_size, probe_rendition
from lpnode.transcode.profiles import VideoProfile, parse_profiles
from lpnode.transcode.testsrc import cut_segments, make_source

DEFAULT_PROFILES = "P360p30fps16x9,P240p30fps16x9,P144p30fps16x9"
_SOURCE_SEGMENTS = 5   # a generated source is this many segments long, sent round and round


@dataclass
class SourceSegment:
    data: bytes
    frames: int
    fps: float
    duration_ms: int
    width: int
    height: int


@dataclass
class Report:
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    payer: PaymentSender | None = None

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def summary(self) -> dict:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 1) if lat else None

        return {"segments": self.sent, "succeeded": self.succeeded, "failed": self.failed,
                "success_rate": round(self.succeeded / self.sent, 4) if self.sent else 0.0,
                "retries": self.retries,
                "latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99),
                               "max": round(lat[-1], 1) if lat else None,
                               "mean": round(statistics.fmean(lat), 1) if lat else None},
                "errors": self.errors,
                **({"payments": {"tickets": self.payer.sent.tickets, "ev_paid_wei": int(self.payer.sent.ev),
                                 "fees_charged_wei": int(self.payer.sent.fees)}} if self.payer else {})}


def describe(data: bytes) -> SourceSegment:
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 30)
        width, height = stream.codec_context.width, stream.codec_context.height
        frames = len(list(container.decode(stream)))
    return SourceSegment(data, frames, fps, round(frames / fps * 1000), width, height)


def expected_frames(src: SourceSegment, profile: VideoProfile) -> int:
    if profile.fps <= 0:
        return src.frames
    return round(src.frames * (profile.fps / max(profile.fps_den, 1)) / src.fps)


def check_rendition(data: bytes, profile: VideoProfile, src: SourceSegment) -> str | None:
    """None if the rendition is what was asked for, else what is wrong with it."""
    try:
        width, height, frames = probe_rendition(data)
    except Exception as exc:  # noqa: BLE001 - any decode failure is the finding
        return f"{profile.name}: does not decode ({exc})"
    want_w, want_h = output_size(src.width, src.height, profile)
    if (width, height) != (want_w, want_h):
        return f"{profile.name}: {width}x{height}, expected {want_w}x{want_h}"
    want = expected_frames(src, profile)
    if abs(frames - want) > 1:
        return f"{profile.name}: {frames} frames, expected {want}"
    return None


async def run_stream(addr: str, stream_no: int, segments: list[SourceSegment], count: int,
                     profiles: list[VideoProfile], max_attempts: int, report: Report,
                     verbose: bool, realtime: bool, stop: asyncio.Event) -> None:
    async with GatewayClient(addr, payer=report.payer) as client:
        # None: ask GetOrchestrator first (the start, or a session the orchestrator refused).
        info: pb.OrchestratorInfo | None = None
        manifest = f"teststream-{stream_no}-{int(time.time())}"
        live_start = time.monotonic()
        for seq in range(count):
            src = segments[seq % len(segments)]
            if realtime:
                due = live_start + sum(segments[i % len(segments)].duration_ms for i in range(seq)) / 1000
                try:
                    await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
                except TimeoutError:
                    pass
            if stop.is_set():
                break
            report.sent += 1
            started = time.perf_counter()
            result, error, renditions, latency = None, "", [], 0.0
            for attempt in range(1, max_attempts + 1):
                try:
                    if info is None:
                        info = await client.get_orchestrator()
                    result = await client.submit(info, manifest, seq, src.data, profiles, src.duration_ms)
                    latency = (time.perf_counter() - started) * 1000
                    if result.info.HasField("ticket_params"):
                        info = result.info  # fresh ticket params: the ones in use expire in 40 blocks
                    # A gateway fetches the renditions at once; if the orchestrator restarted in
                    # between they are gone, and the segment is sent again.
                    renditions = [await client.download(r.url) for r in result.data.segments]
                    break
                except (httpx.TransportError, httpx.HTTPStatusError, grpc.aio.AioRpcError, OSError) as exc:
                    result, error = None, f"transport: {exc}"
                except SegmentRejected as exc:
                    error = str(exc)
                    if not exc.retryable:
                        break
                    if exc.needs_new_session:
                        # A new session starts with no credit, on both sides.
                        if report.payer is not None and info is not None:
                            report.payer.new_session(info.transcoder, manifest)
                        info = None
                if attempt < max_attempts:
                    report.retries += 1
                    # An orchestrator restart takes a few seconds: back off up to 4 s.
                    await asyncio.sleep(min(0.25 * 2 ** attempt, 4.0))
            if result is None:
                report.fail(error)
                print(f"stream {stream_no} seg {seq}: FAILED {error}", flush=True)
                continue
            problems = [problem for profile, data in zip(profiles, renditions, strict=False)
                        if (problem := check_rendition(data, profile, src))]
            if len(result.data.segments) != len(profiles):
                problems.append(f"{len(result.data.segments)} renditions for {len(profiles)} profiles")
            if problems:
                report.fail("bad rendition")
                print(f"stream {stream_no} seg {seq}: BAD {'; '.join(problems)}", flush=True)
                continue
            report.succeeded += 1
            report.latencies_ms.append(latency)
            if verbose:
                print(f"stream {stream_no} seg {seq}: ok {latency:.0f} ms", flush=True)


def load_source(path: str | None, resolution: str) -> list[SourceSegment]:
    if path:
        raw = Path(path).read_bytes()
    else:
        width, height = (int(v) for v in resolution.lower().split("x"))
        raw = make_source(_SOURCE_SEGMENTS * 2.0, width, height, 30)
    return [describe(seg) for seg in cut_segments(raw, 2.0)]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lpnode test-stream", description=__doc__)
    p.add_argument("-orchAddr", required=True, help="orchestrator host:port (8935)")
    p.add_argument("-segments", type=int, default=10, help="segments per stream (default 10)")
    p.add_argument("-streams", type=int, default=1, help="concurrent streams (default 1)")
    p.add_argument("-source", help="a video file to cut into 2 s segments (default: generated)")
    p.add_argument("-resolution", default="1280x720", help="generated source size (default 1280x720)")
    p.add_argument("-profiles", default=DEFAULT_PROFILES, help=f"renditions (default {DEFAULT_PROFILES})")
    p.add_argument("-maxAttempts", type=int, default=3, help="tries per segment on transport errors")
    p.add_argument("-quiet", action="store_true", help="print only failures and the summary")
    p.add_argument("-realtime", action="store_true",
                   help="pace each stream like a live one: a segment per segment duration (SIGINT ends it "
                        "after the segment in hand, with the summary)")
    pay = p.add_argument_group("paying on chain (an on-chain orchestrator refuses unpaid segments)")
    pay.add_argument("-ethKeystorePath", help="the gateway's keystore (directory or key file): pay with tickets")
    pay.add_argument("-ethAcctAddr", help="the account in it (default: its only or first one)")
    pay.add_argument("-ethPassword", help="file holding the keystore's password")
    pay.add_argument("-deposit", type=eth, default=0, help="first add this much ETH to the TicketBroker deposit")
    pay.add_argument("-reserve", type=eth, default=0, help="first add this much ETH to the TicketBroker reserve")
    for flag in ("-network", "-ethUrl", "-ethController", "-dataDir"):
        pay.add_argument(flag, help=f"for -deposit/-reserve: lpnode's {flag}")
    args = p.parse_args(argv)
    if args.segments < 1 or args.streams < 1 or args.maxAttempts < 1:
        p.error("-segments, -streams and -maxAttempts must be at least 1")
    return args


async def run(args: argparse.Namespace) -> Report:
    profiles = parse_profiles(args.profiles)
    segments = load_source(args.source, args.resolution)
    report = Report(payer=await _payer(args))
    # SIGINT or SIGTERM ends the stream after the segment in hand, like a broadcaster stopping:
    # the summary covers what was sent.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(run_stream(args.orchAddr, n, segments, args.segments, profiles,
                                      args.maxAttempts, report, not args.quiet, args.realtime, stop)
                           for n in range(args.streams)))
    return report


async def _payer(args: argparse.Namespace) -> PaymentSender | None:
    """The gateway's account, when it pays; funds its deposit and reserve first if asked."""
    if not args.ethKeystorePath:
        return None
    from lpnode.eth.keystore import unlock
    account = unlock(args.ethKeystorePath, args.ethAcctAddr, args.ethPassword)
    if args.deposit or args.reserve:
        from lpnode.config import default_datadir
        from lpnode.eth.client import Chain
        from lpnode.eth.commands import chain_config, fund
        from lpnode.eth.tx import GasPolicy, TxSender
        from lpnode.secret import load_rpc_url
        if not args.ethUrl or not args.network:
            raise SystemExit("-deposit/-reserve need the chain: -network and -ethUrl (and -ethController "
                             "off Arbitrum One)")
        network = args.network
        flags = [f"-{name}={value}" for name in ("network", "ethUrl", "ethController")
                 if (value := getattr(args, name))]
        # Its own datadir: the transaction record must not be an orchestrator's.
        datadir = args.dataDir or default_datadir(os.environ, network) + "-gateway"
        cfg = chain_config([*flags, "-dataDir", datadir])
        assert cfg.eth_url and cfg.controller
        chain = Chain(load_rpc_url(cfg.eth_url, log=logging.getLogger("lpnode.teststream")), cfg.controller,
                      cfg.datadir)
        contracts = await chain.connect()
        funds = await fund(TxSender(chain, account, cfg.datadir, GasPolicy.from_config(cfg)), contracts,
                           account.address, args.deposit, args.reserve)
        print(f"gateway {account.address}: deposit {funds['depositWei']} wei, reserve {funds['reserveWei']} wei",
              flush=True)
    return PaymentSender(account.private_key)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        report = asyncio.run(run(args))
    except (OSError, grpc.aio.AioRpcError) as exc:
        report = Report()
        report.errors[f"cannot reach orchestrator {args.orchAddr}: {exc}"] = 1
        print(f"cannot reach orchestrator {args.orchAddr}: {exc}", file=sys.stderr)
    print(json.dumps(report.summary()), flush=True)
    return 0 if report.sent and report.failed == 0 else 1
