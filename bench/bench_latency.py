"""Orchestrator added latency per segment at 1, 10 and 50 concurrent live streams.

A real orchestrator and real transcoder processes run on loopback; this script plays the
gateways. Every stream is its own session and connection and sends real 2-second MPEG-TS
segments paced like a live stream: one every 2 s, streams staggered evenly over the 2 s so
they do not arrive in lockstep. Each level runs once per client (``--clients``): libcurl
through pycurl, standing in for a gateway in a compiled language, and lpnode's own
``GatewayClient`` (httpx). For each segment

    added latency = client round trip of POST /segment - transcoder time

where the transcoder time is the orchestrator's ``Lpnode-Transcoder-Seconds`` header (from
handing the task to a transcoder until its results are back at the orchestrator). What is
left is what the orchestrator adds on the gateway's path: uploading the segment to it (TLS,
HTTP/2), parsing and checking it, scheduling, storing, waking the request up again when the
results arrive, and the response. (The NotifySegment push on the RegisterTranscoder stream,
the transcoder's download of the source and its upload of the results happen after the hand-out,
so ``core/orchestrator.py`` counts them in the transcoder time.) The orchestrator's own histogram
``lpnode_orchestrator_overhead_seconds`` (with ``-monitor``) is read before and after every
level and its mean over the level is reported as a cross-check.

Run: ``.venv/bin/python bench/bench_latency.py [--seconds 30] [--quick]``. Prints a table and
rewrites the "## Orchestrator added latency" section of docs/benchmarks.md. ``--py-spy DIR``
records the orchestrator during each level (``pip install py-spy``), ``--nice-transcoders N``
gives the orchestrator the CPU first, to tell CPU contention from its own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import benchdoc  # bench/: the shared docs/benchmarks.md writer
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "node"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pycurl  # noqa: E402

from lpnode.gateway.client import GatewayClient, segment_request, segment_result  # noqa: E402
from lpnode.net import headers as wire  # noqa: E402
from lpnode.net import lp_rpc_pb2 as pb  # noqa: E402
from lpnode.transcode.engine import output_size  # noqa: E402
from lpnode.transcode.profiles import VideoProfile, parse_profiles  # noqa: E402
from lpnode.transcode.testsrc import cut_segments, make_source  # noqa: E402
from lpnode.pm.sender import PaymentSender  # noqa: E402
from tests.support.fleet import Fleet, Proc, child_setup  # noqa: E402
from tests.support.localchain import LocalChain  # noqa: E402

SECTION = "## Orchestrator added latency"
SECTION_PAID = "## Orchestrator added latency with payments"
ANALYSIS = "## Orchestrator added latency: where the time goes"
DOC = ROOT / "docs" / "benchmarks.md"
TARGET_MS = 10.0           # target: median added latency under this, at every level
DISTURBED_CORES = 0.25     # CPU taken by other people's jobs during a level that spoils it
SEGMENT_S = 2.0            # segment length, and so the interval between a stream's segments
LPNODE = [sys.executable, "-m", "lpnode.cli"]
# What sends POST /segment and downloads the renditions: "curl" stands in for a gateway in a
# compiled language (go-livepeer's is Go), "httpx" is lpnode's own GatewayClient.
CLIENTS = ("curl", "httpx")
# How each client is described in docs/benchmarks.md: only the clients a run used are.
CLIENT_METHODS = {
    "curl": "**curl**, libcurl 8 (nghttp2, OpenSSL) through pycurl, one handle and thread per "
            "stream, standing in for a gateway in a compiled language such as go-livepeer's, its "
            "round trip timed by libcurl itself (`TOTAL_TIME`)",
    "httpx": "**httpx**, lpnode's own `GatewayClient` (what `lpnode test-stream` uses), timed "
             "from this script's event loop, so its figures also hold the Python client's HTTP/2 "
             "and TLS work (see the floor below)",
}


# -- processes ---------------------------------------------------------------------------------
# The orchestrator and transcoders are tests/support/fleet.py's, the same as the integration
# tests start.

def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (the fields after the command name)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]   # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - idle) / hz, sum(ticks[:8]) / hz


def overhead_histogram(orch: Proc) -> tuple[float, float]:
    """(count, sum) of lpnode_orchestrator_overhead_seconds so far."""
    text = orch.get("/metrics")
    values = {}
    for part in ("count", "sum"):
        m = re.search(rf"^lpnode_orchestrator_overhead_seconds_{part}\{{[^}}]*\}} (\S+)$", text,
                      re.M)
        values[part] = float(m.group(1)) if m else 0.0
    return values["count"], values["sum"]


# -- gateways ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """What every stream sends: a few distinct segments round and round, and the renditions."""
    segments: list[bytes]
    profiles: list[VideoProfile]
    source_size: tuple[int, int]
    payer: PaymentSender | None = None  # --payments: the gateways pay with tickets


@dataclass
class LevelResult:
    streams: int
    client: str = "curl"                # what sent POST /segment (see CLIENTS)
    planned: int = 0
    succeeded: int = 0
    late: int = 0                       # sent behind schedule: the previous one took > 2 s
    errors: Counter = field(default_factory=Counter)
    added_ms: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)
    transcoder_ms: list[float] = field(default_factory=list)
    server_mean_ms: float | None = None
    cpu_share: dict[str, float] = field(default_factory=dict)   # cores used, per component
    machine_busy: float = 0.0           # share of all cores busy during the level
    attempts: int = 1                   # measured again when other jobs disturbed it
    loop_lag_ms: list[float] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(self.errors.values())


def check_result(result: pb.TranscodeResult, profiles: list[VideoProfile],
                 source_size: tuple[int, int]) -> str | None:
    """None if the orchestrator returned one plausible rendition per profile, else why not."""
    segments = result.data.segments
    if len(segments) != len(profiles):
        return f"{len(segments)} renditions for {len(profiles)} profiles"
    for seg, profile in zip(segments, profiles):
        # Pixels are width * height of the rendition summed over its encoded frames.
        width, height = output_size(*source_size, profile)
        if seg.pixels <= 0 or seg.pixels % (width * height):
            return f"{profile.name}: implausible pixel count {seg.pixels} for {width}x{height}"
    return None


async def check_download(client: GatewayClient | CurlPoster,
                         result: pb.TranscodeResult) -> str | None:
    """Fetch the renditions as a gateway would; they must be MPEG-TS (0x47 sync bytes)."""
    for seg in result.data.segments:
        data = await client.download(seg.url)
        if len(data) < 188 or data[0] != 0x47 or data[188] != 0x47:
            return f"rendition {seg.url.rsplit('/', 1)[-1]} is not MPEG-TS ({len(data)} bytes)"
    return None


class CurlPoster:
    """POST /segment with libcurl (nghttp2 for HTTP/2, OpenSSL), standing in for a gateway
    written in a compiled language such as go-livepeer's: the round trip is libcurl's own
    ``TOTAL_TIME``, so it leaves out this Python process, which plays 50 gateways on the same
    2 cores. One handle per stream keeps one connection, as ``GatewayClient`` does."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self._curl = pycurl.Curl()
        for option, value in ((pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS),
                              (pycurl.SSL_VERIFYPEER, 0), (pycurl.SSL_VERIFYHOST, 0),
                              (pycurl.NOSIGNAL, 1), (pycurl.TIMEOUT, 30)):
            self._curl.setopt(option, value)

    def post(self, url: str, request_headers: dict[str, str],
             data: bytes) -> tuple[int, bytes, str | None, float]:
        """Blocking POST: status, body, the transcoder-time header, libcurl's round trip (s)."""
        body = BytesIO()
        transcoder_time: list[str] = []
        prefix = wire.TRANSCODER_TIME.lower().encode() + b":"

        def header_line(line: bytes) -> None:
            if line.lower().startswith(prefix):
                transcoder_time.append(line[len(prefix):].strip().decode())

        c = self._curl
        c.setopt(pycurl.URL, url)
        c.setopt(pycurl.POST, 1)
        # "Name;" is curl's way to send a header with an empty value; "Expect:" stops curl
        # from waiting for a 100 Continue.
        c.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" if v else f"{k};"
                                     for k, v in request_headers.items()] + ["Expect:"])
        c.setopt(pycurl.POSTFIELDSIZE, len(data))
        c.setopt(pycurl.POSTFIELDS, data)
        c.setopt(pycurl.WRITEDATA, body)
        c.setopt(pycurl.HEADERFUNCTION, header_line)
        c.perform()
        return (c.getinfo(pycurl.RESPONSE_CODE), body.getvalue(),
                transcoder_time[0] if transcoder_time else None, c.getinfo(pycurl.TOTAL_TIME))

    async def submit_timed(self, info: pb.OrchestratorInfo, manifest: str, seq: int, data: bytes,
                           work: Workload) -> tuple[pb.TranscodeResult, float | None, float]:
        url, request_headers = segment_request(info, manifest, seq, data, work.profiles,
                                               round(SEGMENT_S * 1000), work.payer)
        status, body, transcoder_time, total = await asyncio.get_running_loop().run_in_executor(
            self._executor, self.post, url, request_headers, data)
        result, transcoder_s = segment_result(status, body, transcoder_time)
        if work.payer is not None:
            work.payer.charged(info, manifest.encode(), sum(s.pixels for s in result.data.segments))
        return result, transcoder_s, total

    def get(self, url: str) -> tuple[int, bytes, float]:
        """Blocking GET: status, body, libcurl's round trip (s)."""
        body = BytesIO()
        c = self._curl
        c.setopt(pycurl.URL, url)
        c.setopt(pycurl.HTTPGET, 1)
        c.setopt(pycurl.HTTPHEADER, [])
        c.setopt(pycurl.WRITEDATA, body)
        c.setopt(pycurl.HEADERFUNCTION, lambda line: None)
        c.perform()
        return c.getinfo(pycurl.RESPONSE_CODE), body.getvalue(), c.getinfo(pycurl.TOTAL_TIME)

    async def download(self, url: str) -> bytes:
        status, body, _ = await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                           self.get, url)
        if status != 200:
            raise RuntimeError(f"GET {url}: HTTP {status}")
        return body

    def close(self) -> None:
        self._curl.close()


async def submit_httpx(client: GatewayClient, info: pb.OrchestratorInfo, manifest: str, seq: int,
                       data: bytes, work: Workload) -> tuple[pb.TranscodeResult, float | None, float]:
    """POST /segment through ``GatewayClient`` (httpx), timed from this event loop."""
    started = time.perf_counter()
    result, transcoder_s = await client.submit_timed(info, manifest, seq, data, work.profiles,
                                                     round(SEGMENT_S * 1000))
    return result, transcoder_s, time.perf_counter() - started


async def send_segment(client: GatewayClient, poster: CurlPoster | None,
                       info: pb.OrchestratorInfo, manifest: str, seq: int,
                       work: Workload, out: LevelResult, measured: bool) -> None:
    """One segment: time the submit, then verify the answer outside the timed part."""
    data = work.segments[seq % len(work.segments)]
    try:
        if poster is not None:
            result, transcoder_s, round_trip = await poster.submit_timed(info, manifest, seq,
                                                                         data, work)
        else:
            result, transcoder_s, round_trip = await submit_httpx(client, info, manifest, seq,
                                                                  data, work)
        problem = (check_result(result, work.profiles, work.source_size)
                   or await check_download(poster or client, result))
        if transcoder_s is None:
            problem = problem or "no transcoder time header in the response"
    except Exception as exc:  # noqa: BLE001 - every failure is counted and reported by kind
        problem = f"{type(exc).__name__}: {str(exc)[:120]}"
    if problem:
        out.errors[problem] += 1
        return
    out.succeeded += 1
    if measured:
        out.round_trip_ms.append(round_trip * 1000)
        out.transcoder_ms.append(transcoder_s * 1000)
        out.added_ms.append((round_trip - transcoder_s) * 1000)


async def run_stream(addr: str, index: int, start: float, count: int, work: Workload,
                     out: LevelResult, executor: ThreadPoolExecutor | None) -> None:
    """One live stream: segment ``k`` is due at ``start + k * 2 s``; segment 0 only warms up
    the connections (TLS, HTTP/2) and is checked but not measured."""
    out.planned += count
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    manifest = f"bench-{index}-{int(time.time() * 1000)}"
    sent = 0
    poster = CurlPoster(executor) if executor is not None else None
    try:
        async with GatewayClient(addr, payer=work.payer) as client:
            info = await client.get_orchestrator()
            for seq in range(count):
                due = start + seq * SEGMENT_S
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif seq > 0:
                    out.late += 1
                await send_segment(client, poster, info, manifest, seq, work, out,
                                   measured=seq > 0)
                sent += 1
            # Free the session's slot on its transcoder, as a gateway does at the end.
            await client.end_session(info.auth_token)
    except Exception as exc:  # noqa: BLE001 - the segments never sent are failures too
        out.errors[f"stream setup/teardown: {type(exc).__name__}: {str(exc)[:120]}"] += count - sent
    finally:
        if poster is not None:
            poster.close()


async def watch_loop_lag(samples: list[float], stop: asyncio.Event, every_s: float = 0.05) -> None:
    """How late this process's event loop wakes up: if the gateways' own loop is starved, the
    round trips (and so the added latency) it measures grow with it."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(every_s)
        samples.append((time.perf_counter() - before - every_s) * 1000)


async def run_level(addr: str, streams: int, seconds: float, work: Workload,
                    client: str) -> LevelResult:
    out = LevelResult(streams, client)
    # A thread per stream: each blocks in libcurl for its own segment, as separate gateways do.
    executor = ThreadPoolExecutor(max_workers=streams) if client == "curl" else None
    count = 1 + max(1, round(seconds / SEGMENT_S))   # one warm-up segment plus the measured ones
    first = time.perf_counter() + 0.2
    stop = asyncio.Event()
    lag = asyncio.create_task(watch_loop_lag(out.loop_lag_ms, stop))
    # Stagger the streams evenly over one segment interval.
    try:
        await asyncio.gather(*(run_stream(addr, i, first + i * SEGMENT_S / streams, count, work,
                                          out, executor) for i in range(streams)))
    finally:
        if executor is not None:
            executor.shutdown()
    stop.set()
    await lag
    # Every planned segment is either a verified success or a counted failure.
    unaccounted = out.planned - out.succeeded - out.failures
    if unaccounted:
        out.errors["not accounted for (bench bug)"] += unaccounted
    return out


def wait_for_quiet(limit: float = 0.15, patience_s: float = 120.0) -> float:
    """Wait (up to ``patience_s``) until the machine is below ``limit`` busy over a second, so a
    level does not start while someone else's job has the shared cores; returns the last
    reading, reported if it never got quiet."""
    deadline = time.monotonic() + patience_s
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        after = machine_busy_seconds()
        busy = (after[0] - before[0]) / max(1e-9, after[1] - before[1])
        if busy < limit or time.monotonic() > deadline:
            return busy


@dataclass
class Floor:
    """Round trips that do no orchestrator work: what one HTTPS/HTTP2 exchange with this
    server and client stack costs on this machine, the floor under any added latency."""
    client: str
    get_404_ms: float
    post_403_ms: float


def measure_curl_floor(addr: str, body: bytes, rounds: int = 30) -> Floor:
    """As ``measure_floor``, with one libcurl handle set up like ``CurlPoster``'s."""
    gets: list[float] = []
    posts: list[float] = []
    with ThreadPoolExecutor(max_workers=1) as executor:
        poster = CurlPoster(executor)
        try:
            for _ in range(rounds + 2):
                gets.append(poster.get(f"https://{addr}/stream/floor-probe.ts")[2] * 1000)
                status, _, _, total = poster.post(f"https://{addr}/segment",
                                                  {"Content-Type": "video/MP2T"}, body)
                if status != 403:
                    raise RuntimeError(f"floor probe: expected 403, got {status}")
                posts.append(total * 1000)
                time.sleep(0.05)
        finally:
            poster.close()
    return Floor("curl", percentile(gets[2:], 50), percentile(posts[2:], 50))


async def measure_floor(addr: str, body: bytes, rounds: int = 30) -> Floor:
    """GET of a missing rendition (404), and a segment-sized POST /segment without a segment
    header (403 after the body is read), over one connection configured as GatewayClient's."""
    gets: list[float] = []
    posts: list[float] = []
    async with httpx.AsyncClient(http2=True, verify=False, timeout=30) as http:
        for i in range(rounds + 2):
            started = time.perf_counter()
            await http.get(f"https://{addr}/stream/floor-probe.ts")
            gets.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            resp = await http.post(f"https://{addr}/segment", content=body,
                                   headers={"Content-Type": "video/MP2T"})
            posts.append((time.perf_counter() - started) * 1000)
            if resp.status_code != 403:
                raise RuntimeError(f"floor probe: expected 403, got {resp.status_code}")
            await asyncio.sleep(0.05)   # as idle between requests as a paced stream is
    # The first two pay for the TLS handshake and connection set-up.
    return Floor("httpx", percentile(gets[2:], 50), percentile(posts[2:], 50))


# -- one level, with its server-side and CPU figures -------------------------------------------

def measure_level(fleet: Fleet, orch: Proc, streams: int, seconds: float,
                  work: Workload, client: str) -> LevelResult:
    pids = {"orchestrator": [orch.pid],
            "transcoders": [n.pid for n in fleet.procs if n is not orch]}
    cpu_before = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
    own_before = sum(os.times()[:2])
    busy_before = machine_busy_seconds()
    hist_before = overhead_histogram(orch)
    wall = time.perf_counter()
    out = asyncio.run(run_level(fleet.orch_addr, streams, seconds, work, client))
    wall = time.perf_counter() - wall
    hist_after = overhead_histogram(orch)
    count = hist_after[0] - hist_before[0]
    out.server_mean_ms = (hist_after[1] - hist_before[1]) / count * 1000 if count else None
    for k, v in pids.items():
        out.cpu_share[k] = (sum(cpu_seconds(p) for p in v) - cpu_before[k]) / wall
    out.cpu_share["bench client"] = (sum(os.times()[:2]) - own_before) / wall
    busy_after = machine_busy_seconds()
    busy_s = busy_after[0] - busy_before[0]
    out.machine_busy = busy_s / (busy_after[1] - busy_before[1])
    # This machine is shared: whatever else ran during the level took CPU from ours.
    out.cpu_share["other processes"] = max(0.0, busy_s / wall - sum(out.cpu_share.values()))
    return out


# -- statistics and report ---------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (with few samples p99 is simply the largest)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))   # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def verdict(level: LevelResult) -> str:
    """Against the latency target; failed segments are named too, never left out."""
    median = percentile(level.added_ms, 50)
    latency = "no data" if median is None else "pass" if median < TARGET_MS else "FAIL"
    return latency + (f", {level.failures} failed" if level.failures else "")


def passed(level: LevelResult) -> bool:
    return verdict(level) == "pass"


TABLE_HEAD = ["client", "streams", "segments", "failures", "late", "added p50 ms", "added p90 ms",
              "added p99 ms", "round trip p50 ms", "transcoder p50 ms", "server mean ms",
              f"target p50 < {TARGET_MS:g} ms"]


def table_rows(levels: list[LevelResult]) -> list[list[str]]:
    return [[lv.client, str(lv.streams), str(lv.succeeded + lv.failures), str(lv.failures), str(lv.late),
             fmt(percentile(lv.added_ms, 50)), fmt(percentile(lv.added_ms, 90)),
             fmt(percentile(lv.added_ms, 99)), fmt(percentile(lv.round_trip_ms, 50), 0),
             fmt(percentile(lv.transcoder_ms, 50), 0), fmt(lv.server_mean_ms), verdict(lv)]
            for lv in levels]


def markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(r) + " |" for r in rows)]


def context_rows(levels: list[LevelResult]) -> list[list[str]]:
    """CPU per component (in cores) and the bench's own event-loop lag per level."""
    return [[lv.client, str(lv.streams), *(f"{lv.cpu_share.get(k, 0):.2f}" for k in
                                ("orchestrator", "transcoders", "bench client",
                                 "other processes")),
             f"{lv.machine_busy:.0%}", str(lv.attempts),
             fmt(percentile(lv.loop_lag_ms, 50)), fmt(percentile(lv.loop_lag_ms, 99))]
            for lv in levels]


CONTEXT_HEAD = ["client", "streams", "orchestrator CPU (cores)", "transcoders CPU (cores)",
                "bench client CPU (cores)", "other processes CPU (cores)", "machine busy",
                "attempts", "client loop lag p50 ms", "client loop lag p99 ms"]


def print_report(levels: list[LevelResult]) -> None:
    rows = [TABLE_HEAD, *table_rows(levels)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEAD))]
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    print()
    print("\n".join(markdown_table(CONTEXT_HEAD, context_rows(levels))))
    for lv in levels:
        for reason, n in lv.errors.most_common():
            print(f"{lv.streams} streams, {lv.client}: {n} x {reason}")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_section(text: str) -> None:
    benchdoc.write_section(text.splitlines()[0], text, DOC)


def method_text(args: argparse.Namespace, work: Workload) -> str:
    rendition = ", ".join(f"{p.width}x{p.height} @ {p.bitrate // 1000} kb/s"
                          + (f" {p.fps} fps" if p.fps else "") for p in work.profiles)
    nice = (f", run at niceness {args.nice_transcoders}" if args.nice_transcoders else "")
    return (
        f"Method: one orchestrator (`-maxSessions {args.orch_sessions}`) and {args.transcoders} "
        f"transcoder processes (`-maxSessions {args.transcoder_sessions}` each{nice}) on "
        f"loopback, with TLS and HTTP/2 as in production; the gateways are this script, each "
        f"stream its own session and connections. Every level is run once per client: "
        f"{'; '.join(CLIENT_METHODS[c] for c in args.clients)}. The target is judged on the "
        f"{args.clients[0]} rows. Source: `make_source` {args.size} at "
        f"{args.fps} fps with AAC audio, cut into 2-second MPEG-TS segments "
        f"(~{max(map(len, work.segments)) // 1000} kB each); one rendition, {rendition}, "
        f"transcoded for real by libx264. The frame rate is low on purpose: libx264 costs ~30 ms "
        f"of CPU per segment before its first frame, and 50 streams mean 25 segments/s on 2 "
        f"cores. Each stream sends one segment every 2 s, the streams staggered evenly over the "
        f"2 s, for {args.seconds:g} s per level; a stream's first segment warms up its "
        f"connections and is checked but not measured. Every answer is checked (one rendition, "
        f"pixel count a multiple of its frame size, the rendition downloaded and MPEG-TS). The "
        f"machine is shared with other people's jobs: each level starts once the machine is "
        f"idle, and a level during which other processes took over {DISTURBED_CORES:g} cores "
        f"is measured again (up to {args.retries} more times; \"attempts\" below), with the same "
        f"processes.\n\n"
        f"**Added latency = client round trip of POST /segment (until the TranscodeResult "
        f"is read) - the transcoder time the orchestrator reports** (from "
        f"handing the task out until the results are posted back to it). It counts uploading "
        f"the segment (TLS, HTTP/2), parsing and checking it (hash, auth token, capabilities), "
        f"scheduling, storing, resuming the request when the results arrive and the response, "
        f"plus the client's own HTTP/2 work. The NotifySegment push on the "
        f"RegisterTranscoder stream, the transcoder's download of the source and its upload of "
        f"the results fall after the hand-out, so the orchestrator counts them as transcoder "
        f"time. \"server mean\" is the mean of the orchestrator's own "
        f"`lpnode_orchestrator_overhead_seconds` over the level (from its request headers "
        f"arriving to its response, less transcoder time; warm-up segments included). \"late\" "
        f"counts segments sent behind schedule because the stream's previous one took over 2 s. "
        f"**All processes (bench client, orchestrator, transcoders, and anything else running "
        f"on this shared machine) share the same {os.cpu_count()} cores**, so these figures are "
        f"an upper bound on what the orchestrator adds on a machine of its own.")


PAID_METHOD = (
    "**Payments on** (`--payments`): the orchestrator runs on a local chain (anvil and the project's "
    "contracts), registered and active, with go-livepeer's default `-ticketEV` and a price at which each "
    "segment's pixels cost about one ticket's EV; each stream's gateway signs its GetOrchestrator request "
    "and every segment, and pays each segment with as many tickets as its fee needs (about one; a funded "
    "TicketBroker deposit and reserve), so on every segment the orchestrator checks the segment's and the "
    "ticket's signatures, credits the ticket and debits the fee. Winning tickets are as rare as on the real "
    "network (the EV a small fraction of the face value).")


def section_text(args: argparse.Namespace, levels: list[LevelResult], floors: list[Floor],
                 work: Workload) -> str:
    failures = sum(lv.failures for lv in levels)
    target_levels = judged(args, levels)
    missed = [lv.streams for lv in target_levels if not passed(lv)]
    per_level = "; ".join(f"{lv.streams} stream(s): {verdict(lv)} "
                          f"({fmt(percentile(lv.added_ms, 50))} ms)" for lv in target_levels)
    summary = (f"**Target: median added latency under {TARGET_MS:g} ms at every level, "
               f"measured with the {args.clients[0]} client: "
               + ("met" if not missed else "NOT met") + f".** {per_level}. "
               f"Failed segments (all clients): {failures} of "
               f"{sum(lv.planned for lv in levels)}.")
    errors = [f"- {lv.streams} streams, {lv.client}: {n} x {reason}"
              for lv in levels for reason, n in lv.errors.most_common()]
    command = " ".join(["bench/bench_latency.py", *sys.argv[1:]])
    return "\n".join([
        SECTION_PAID if args.payments else SECTION, "",
        "Written by `bench/bench_latency.py`; rerun it to refresh this section.", "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical cores, no GPU; "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Command: `.venv/bin/python {command}`",
        "", method_text(args, work), "",
        *([PAID_METHOD, ""] if args.payments else []),
        *markdown_table(TABLE_HEAD, table_rows(levels)), "",
        summary, "",
        *(["Failures:", "", *errors, ""] if errors else []),
        "CPU used per component during each level (in cores; \"other processes\" is whatever "
        "else ran on the machine meanwhile) and how late the bench client's own event loop "
        "woke up:", "",
        *markdown_table(CONTEXT_HEAD, context_rows(levels)), "",
        "Floor, measured before the levels over one connection per client set up as in the "
        "levels: a GET answered 404, and a segment-sized POST /segment answered 403 (body read, "
        "no segment header), medians of 30 round trips 50 ms apart. Every segment's added "
        "latency includes one such exchange.", "",
        *markdown_table(["client", "GET 404 ms", "segment POST 403 ms"],
                        [[f.client, fmt(f.get_404_ms), fmt(f.post_403_ms)] for f in floors]), "",
        *([args.notes, ""] if args.notes else []),
        # The analysis of where the time goes is a section of its own, written by people from
        # profiles: a run rewrites only what it measured.
        f"What these figures mean: [{ANALYSIS[3:]}](#{ANALYSIS[3:].lower().replace(' ', '-')}).",
        "",
    ])


# -- main --------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per level")
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 s per level, no doc")
    parser.add_argument("--levels", default="1,10,50", help="concurrent streams per level")
    # libx264 costs ~30 ms CPU per segment before the first frame here, plus ~2-3 ms a frame;
    # a 2 fps source keeps 25 segments/s (50 streams) at ~0.9 of the 2 cores, so the
    # transcoders keep up and the orchestrator and this client still get CPU.
    parser.add_argument("--size", default="256x144", help="source resolution")
    parser.add_argument("--fps", type=int, default=2, help="source frame rate")
    parser.add_argument("--profiles", default="160x90@100k", help="renditions (profiles.py)")
    parser.add_argument("--clients", default="curl,httpx",
                        help="what sends POST /segment, each measured at every level: curl "
                             "(libcurl through pycurl, timed by libcurl; the target is judged "
                             "on it) and httpx (lpnode's own GatewayClient, timed from Python)")
    parser.add_argument("--transcoders", type=int, default=2)
    parser.add_argument("--transcoder-sessions", type=int, default=30)
    parser.add_argument("--orch-sessions", type=int, default=60)
    parser.add_argument("--nice-transcoders", type=int, default=0, metavar="N",
                        help="run the transcoders at this niceness, so the orchestrator gets "
                             "the CPU first (separates CPU contention from its own cost)")
    parser.add_argument("--py-spy", metavar="DIR",
                        help="record the orchestrator with py-spy during each level into DIR")
    parser.add_argument("--notes", default="", help="markdown paragraph added to the section")
    parser.add_argument("--retries", type=int, default=2,
                        help="times to measure a level again when other jobs disturbed it")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--payments", action="store_true",
                        help="the orchestrator on a local chain, every segment paid with tickets")
    args = parser.parse_args()
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = sorted(set(args.clients) - set(CLIENTS))
    if unknown or not args.clients:
        parser.error(f"--clients: unknown {', '.join(unknown) or 'none given'}; "
                     f"choose from {', '.join(CLIENTS)}")
    if args.quick:
        args.seconds, args.no_doc, args.retries = 6.0, True, 0
    return args


def start_py_spy(pid: int, out_dir: str, streams: int, seconds: float) -> subprocess.Popen:
    """Sample the orchestrator for the length of a level (raw = collapsed stacks, greppable)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                             "--duration", str(int(seconds + 2 * SEGMENT_S + 1)), "--output",
                             f"{out_dir}/orchestrator-{streams}.txt"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=child_setup(0))


def measure_undisturbed(fleet: Fleet, orch: Proc, streams: int, client: str, work: Workload,
                        args: argparse.Namespace) -> LevelResult:
    """One level; run again (at most ``args.retries`` times) if other people's jobs took more
    than ``DISTURBED_CORES`` of CPU meanwhile, since the machine is shared."""
    for attempt in range(args.retries + 1):
        busy = wait_for_quiet(patience_s=0 if args.quick else 120)
        print(f"{streams} stream(s), {client}, for {args.seconds:g} s (machine {busy:.0%} busy "
              f"before) ...", flush=True)
        spy = start_py_spy(orch.pid, args.py_spy, streams, args.seconds) if args.py_spy else None
        result = measure_level(fleet, orch, streams, args.seconds, work, client)
        if spy is not None:
            spy.wait()
        result.attempts = attempt + 1
        other = result.cpu_share["other processes"]
        if other <= DISTURBED_CORES or attempt == args.retries:
            return result
        print(f"  other processes took {other:.2f} cores meanwhile; measuring again", flush=True)
    raise AssertionError("unreachable")


def make_workload(args: argparse.Namespace) -> Workload:
    width, height = (int(v) for v in args.size.split("x"))
    source = make_source(3 * SEGMENT_S, width, height, args.fps)
    return Workload(cut_segments(source, SEGMENT_S), parse_profiles(args.profiles), (width, height))


def run_levels(args: argparse.Namespace,
               work: Workload) -> tuple[list[Floor], list[LevelResult]]:
    """Start the fleet, measure the floor and every level, and stop the fleet whatever happens."""
    results: list[LevelResult] = []
    with tempfile.TemporaryDirectory(prefix="lpnode-bench-latency-") as tmp:
        fleet = Fleet(Path(tmp))
        chain = LocalChain(Path(tmp) / "chain", round_length=500) if args.payments else None
        try:
            paid: list[str] = []
            if chain is not None:
                paid = paid_orchestrator_flags(chain, work, args.fps)
            orch = fleet.orchestrator("-maxSessions", str(args.orch_sessions), *paid)
            for i in range(args.transcoders):
                fleet.transcoder(f"transcoder{i + 1}", args.transcoder_sessions,
                                 niceness=args.nice_transcoders)
            orch.wait_for(lambda: len(orch.status()["transcoders"]) == args.transcoders,
                          f"{args.transcoders} registered transcoders")
            wait_for_quiet(patience_s=0 if args.quick else 120)
            floors = [measure_curl_floor(fleet.orch_addr, work.segments[0]) if client == "curl"
                      else asyncio.run(measure_floor(fleet.orch_addr, work.segments[0]))
                      for client in args.clients]
            for floor in floors:
                print(f"floor, {floor.client}: GET 404 {floor.get_404_ms:.1f} ms, segment-sized "
                      f"POST answered 403 {floor.post_403_ms:.1f} ms (medians)", flush=True)
            for streams in (int(n) for n in args.levels.split(",")):
                for client in args.clients:
                    results.append(measure_undisturbed(fleet, orch, streams, client, work, args))
        finally:
            fleet.stop()
            if chain is not None:
                chain.close()
    return floors, results


def paid_orchestrator_flags(chain: LocalChain, work: Workload, fps: int) -> list[str]:
    """Test account 1 registered and active as the orchestrator; account 2 the gateway, funded."""
    from lpnode.eth import abi

    chain.tmp.mkdir(parents=True, exist_ok=True)
    chain.register(1)
    chain.next_round()
    chain.initialize_round()
    gateway = chain.account(2)
    broker = chain.w3.eth.contract(address=chain.info["contracts"]["TicketBroker"], abi=abi.TICKET_BROKER)
    tx = broker.functions.fundDepositAndReserve(10**20, 10**20).transact(
        {"from": gateway["address"], "value": 2 * 10**20})
    chain.w3.eth.wait_for_transaction_receipt(tx)
    object.__setattr__(work, "payer", PaymentSender(bytes.fromhex(gateway["private_key"][2:])))  # frozen: set once
    # Priced so that every segment needs a ticket of go-livepeer's default EV (8e9 wei): each
    # segment's pixels cost about that much.
    pixels = sum(p.width * p.height for p in work.profiles) * max(1, round(SEGMENT_S * fps))
    price = -(-8_000_000_000 // pixels)
    return [*chain.flags(1), "-reward=false", "-pricePerUnit", str(price), "-blockPollingInterval", "1"]


def judged(args: argparse.Namespace, levels: list[LevelResult]) -> list[LevelResult]:
    """The levels the target is judged on: those of the first client in --clients."""
    return [lv for lv in levels if lv.client == args.clients[0]]


def main() -> int:
    args = parse_args()
    work = make_workload(args)
    # SIGTERM should unwind through run_levels' finally (stopping the fleet) like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    floors, results = run_levels(args, work)
    print()
    print_report(results)
    if not args.no_doc:
        write_section(section_text(args, results, floors, work))
        print(f"\nupdated {DOC.relative_to(ROOT)}")
    failed = any(lv.failures for lv in results)
    return 0 if all(passed(lv) for lv in judged(args, results)) and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
