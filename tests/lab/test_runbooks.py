"""The runbooks on the lab, each under a live-paced test stream through lb1 that pays as the
lab's gateway and runs the whole time: what the stream's gateway saw (failed segments, its
own retries) is what is asserted, with the test stream's defaults (-maxAttempts 3).

    .venv/bin/python -m pytest tests/lab/test_runbooks.py -q

o1 has t1 and t2; o2 transcodes itself; both sit behind lb1 (inventory/lab.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lab as lab_pkg
from lab.chain import stream_flags
from lpfleet.runner import LOCK_PATH, local_journal

from .conftest import REPO, lpfleet

pytestmark = pytest.mark.lab

INVENTORY = "inventory/lab.py"
STREAM = ("-profiles", "P240p30fps16x9,P144p30fps16x9", "-resolution", "426x240", "-realtime", "-quiet")


def runbook(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lpfleet.cli", "runbook", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def pid(name: str) -> int:
    return int(lab_pkg.ssh_run(name, "systemctl show lpnode -p MainPID --value", check=True).stdout.strip())


class LiveStream:
    """A paying, live-paced test stream through lb1 for the length of a test."""

    def __init__(self, lab, segments: int) -> None:
        lb = lab.host("lb1").address
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "lpnode.cli", "test-stream", "-orchAddr", f"{lb}:8935", "-segments", str(segments),
             *stream_flags(lab.chain), *STREAM], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started = time.monotonic()

    def running(self) -> bool:
        return self.popen.poll() is None

    def finish(self) -> tuple[dict, str]:
        """Stop it (SIGINT: it ends after the segment in hand) and read its summary."""
        self.popen.send_signal(signal.SIGINT)
        output, _ = self.popen.communicate(timeout=120)
        lines = output.strip().splitlines()
        return (json.loads(lines[-1]) if lines else {}), output


def journal_since(started: float) -> list[dict]:
    path = local_journal(INVENTORY)
    entries = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in entries if e["time"] >= started]


@pytest.fixture
def lab_up(lab, deployed):
    """The deployed lab with no runbook lock left over, every lpnode back in service."""
    lab_pkg.ssh_run("mon1", f"rm -f {LOCK_PATH}", check=True)
    yield lab


def test_rolling_update_over_the_transcoders_costs_the_stream_nothing(lab_up):
    before = {name: pid(name) for name in ("t1", "t2")}
    stream = LiveStream(lab_up, 600)
    run = runbook("rolling-update", "-i", INVENTORY, "--restart", "--limit", "t1,t2", "--yes")
    assert stream.running(), "the stream must run the whole time"
    summary, output = stream.finish()
    print(run.stdout[-3000:])
    print(f"transcoders rolled: stream {summary['succeeded']}/{summary['segments']}, retries {summary['retries']}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rolling-update: all 8 steps done" in run.stdout
    assert all(pid(name) != before[name] for name in before), "every transcoder's lpnode is a new process"
    assert summary["failed"] == 0 and summary["retries"] == 0, output


def test_rolling_update_over_the_orchestrators_and_a_second_runbook_refused(lab_up):
    before = {name: pid(name) for name in ("o1", "o2")}
    stream = LiveStream(lab_up, 600)
    started = time.time()
    rolling = subprocess.Popen([sys.executable, "-m", "lpfleet.cli", "runbook", "rolling-update", "-i", INVENTORY,
                                "--restart", "--limit", "o1,o2", "--yes"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not any(e["event"] == "start" for e in journal_since(started)):
        assert rolling.poll() is None and time.monotonic() < deadline, "the rolling update never started"
        time.sleep(0.2)
    second = runbook("drain", "t1", "-i", INVENTORY, "--yes")
    output, _ = rolling.communicate(timeout=900)
    assert stream.running(), "the stream must run the whole time"
    summary, stream_output = stream.finish()
    print(output[-3000:])
    print(f"orchestrators rolled: stream {summary['succeeded']}/{summary['segments']}, retries {summary['retries']}")

    assert second.returncode == 3, second.stdout + second.stderr
    assert "refused: the fleet is locked by" in second.stdout and "running rolling-update" in second.stdout
    t1 = json.loads(lab_pkg.ssh_run("t1", "curl -sf http://127.0.0.1:7935/status", check=True).stdout)
    assert t1["draining"] is False, "the refused runbook changed nothing"

    assert rolling.returncode == 0, output
    assert all(pid(name) != before[name] for name in before), "every orchestrator's lpnode is a new process"
    # Each orchestrator's turn moves the stream to the other once; the first segment there
    # starts a new session (another orchestrator's ticket params), as a go-livepeer gateway does.
    assert summary["failed"] == 0, stream_output
    assert summary["retries"] <= len(before), stream_output


def test_a_host_that_does_not_come_back_stops_the_run_and_resume_finishes_it(lab_up):
    before = {name: pid(name) for name in ("t2", "o2")}
    lpfleet("lab", "cut", "t2")
    stream = LiveStream(lab_up, 600)
    started = time.time()
    try:
        first = runbook("rolling-update", "-i", INVENTORY, "--restart", "--limit", "t2,o2", "--yes")
    finally:
        lpfleet("lab", "restore", "t2")
    print(first.stdout[-2000:])
    assert first.returncode == 1, first.stdout + first.stderr
    assert "FAILED: t2: cannot reach it over SSH" in first.stdout
    assert "--resume" in first.stdout
    # Nothing after the failed step ran: o2 was not touched.
    assert pid("o2") == before["o2"]
    assert not [e for e in journal_since(started) if e.get("host") == "o2"]

    resumed = runbook("rolling-update", "-i", INVENTORY, "--restart", "--limit", "t2,o2", "--yes", "--resume")
    summary, output = stream.finish()
    print(resumed.stdout[-3000:])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "rolling-update: all 9 steps done" in resumed.stdout
    events = journal_since(started)
    assert [e["event"] for e in events if e["event"] in ("start", "resume", "finished")] == ["start", "resume",
                                                                                              "finished"]
    done = [e["step"] for e in events if e["event"] == "step" and e["result"] == "ok"]
    assert done[0] == "t2:drain" and done[-1] == "o2:verify" and len(done) == len(set(done)) == 9
    assert pid("t2") != before["t2"] and pid("o2") != before["o2"]
    assert summary["failed"] == 0, output


def test_rotate_orch_secret_drops_no_segment_and_the_old_secret_is_refused(lab_up):
    from runbooks.rotate_orch_secret import REFUSED, _registration

    secret_file = Path(lab_up.orch_secret_file)
    old = secret_file.read_text().strip()
    stream = LiveStream(lab_up, 600)
    run = runbook("rotate-orch-secret", "-i", INVENTORY, "--yes")
    assert stream.running(), "the stream must run the whole time"
    summary, output = stream.finish()
    print(run.stdout[-2500:])
    print(f"orchSecret rotated: stream {summary['succeeded']}/{summary['segments']}, retries {summary['retries']}")
    assert run.returncode == 0, run.stdout + run.stderr
    new = secret_file.read_text().strip()
    assert new != old and old not in run.stdout + run.stderr and new not in run.stdout + run.stderr
    assert not secret_file.with_name(secret_file.name + ".previous").exists()
    for name in ("o1", "o2"):
        assert asyncio.run(_registration(f"{lab_up.host(name).address}:8935", old)) == REFUSED
    digest = hashlib.sha256((new + "\n").encode()).hexdigest()
    for name in ("o1", "o2", "t1", "t2"):
        assert lab_pkg.ssh_run(name, "sha256sum /etc/lpnode/orchSecret", check=True).stdout.split()[0] == digest
    assert summary["failed"] == 0 and summary["retries"] == 0, output


FAKE_KEYSTORE = '{"address": "8ba1f109551bd432803012645ac136ddd64dba72", "crypto": {}, "version": 3}'


def test_distribute_keystore_puts_keys_where_roles_need_them_and_proves_none_elsewhere(lab_up):
    # Left behind by hosts that once had a role: t1 in lpfleet's own directory (removed by the
    # runbook), t2 somewhere else (the runbook stops and names it; the operator decides).
    lab_pkg.ssh_run("t1", "mkdir -p /etc/lpnode/keystore && "
                    f"echo '{FAKE_KEYSTORE}' > /etc/lpnode/keystore/keystore.json", check=True)
    lab_pkg.ssh_run("t2", f"echo '{FAKE_KEYSTORE}' > /root/UTC--2026-01-01--8ba1f109", check=True)
    stream = LiveStream(lab_up, 600)
    first = runbook("distribute-keystore", "-i", INVENTORY, "--yes")
    print(first.stdout[-2500:])
    assert first.returncode == 1, first.stdout + first.stderr
    assert "t2: keystore file(s) outside lpfleet's directories: /root/UTC--2026-01-01--8ba1f109" in first.stdout
    assert "t1: no keystore but its own" in first.stdout and "removed /etc/lpnode/keystore" in first.stdout
    lab_pkg.ssh_run("t2", "rm /root/UTC--2026-01-01--8ba1f109", check=True)
    resumed = runbook("distribute-keystore", "-i", INVENTORY, "--yes", "--resume")
    assert stream.running(), "the stream must run the whole time"
    summary, output = stream.finish()
    print(resumed.stdout[-2500:])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    chain = lab_up.chain
    paths = (chain["keystore_path"], chain["hot_keys"]["o1"]["keystore"], chain["hot_keys"]["o2"]["keystore"])
    digest = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in paths}
    want = {"o1": {"/etc/lpnode/keystore/keystore.json": digest[chain["keystore_path"]],
                   "/etc/lpnode/hot-keystore/keystore.json": digest[chain["hot_keys"]["o1"]["keystore"]]},
            "o2": {"/etc/lpnode/hot-keystore/keystore.json": digest[chain["hot_keys"]["o2"]["keystore"]]}}
    from lpfleet.remote import Fleet
    from runbooks._steps import Run
    from runbooks.distribute_keystore import scan
    fleet = Fleet.load(INVENTORY)
    try:
        for h in lab_up.hosts:
            found = {f["path"]: f["sha256"] for f in scan(Run(fleet), h.name)}
            assert found == want.get(h.name, {}), h.name
    finally:
        fleet.close()
    assert summary["failed"] == 0 and summary["retries"] == 0, output


def test_add_worker_then_remove_worker(lab_up):
    from lab.config import DEFAULT_HOSTS

    names = list(DEFAULT_HOSTS)
    lpfleet("lab", "up", "--hosts", ",".join(names))           # no t3 left from an earlier run
    lpfleet("lab", "up", "--hosts", ",".join([*names, "t3"]))  # t3: a bare Debian host
    try:
        stream = LiveStream(lab_up, 600)
        added = runbook("add-worker", "t3", "-i", INVENTORY, "--yes")
        print(added.stdout[-1500:])
        assert added.returncode == 0, added.stdout + added.stderr
        o1 = json.loads(lab_pkg.ssh_run("mon1", f"curl -sf {lab_up.host('o1').address}:7935/status",
                                        check=True).stdout)
        assert {t["name"]: t["capacity"] for t in o1["transcoders"]} == {"t1:7935": 8, "t2:7935": 8, "t3:7935": 8}

        removed = runbook("remove-worker", "t3", "-i", INVENTORY, "--yes")
        assert stream.running(), "the stream must run the whole time"
        summary, output = stream.finish()
        print(removed.stdout[-1500:])
        assert removed.returncode == 0, removed.stdout + removed.stderr
        o1 = json.loads(lab_pkg.ssh_run("mon1", f"curl -sf {lab_up.host('o1').address}:7935/status",
                                        check=True).stdout)
        assert sorted(t["name"] for t in o1["transcoders"]) == ["t1:7935", "t2:7935"] and o1["capacity"] == 16
        t3 = lab_pkg.ssh_run("t3", "systemctl is-active lpnode; ls /etc/lpnode", check=False).stdout.split()
        assert t3[0] == "inactive" and not {"orchSecret", "adminToken", "orchestrator.crt"} & set(t3)
        assert summary["failed"] == 0 and summary["retries"] == 0, output
    finally:
        lpfleet("lab", "up", "--hosts", ",".join(names))


def status() -> dict:
    p = subprocess.run([sys.executable, "-m", "lpfleet.cli", "status", "-i", INVENTORY, "--json"], cwd=REPO,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def test_drain_and_undrain_an_orchestrator_seen_in_lpfleet_status(lab_up):
    view = status()
    orchestrators = {o["name"]: o for o in view["orchestrators"]}
    assert orchestrators["o1"]["missingTranscoders"] == [] and not orchestrators["o1"]["draining"]
    assert sorted(orchestrators["o1"]["expectedTranscoders"]) == ["t1:7935", "t2:7935"]
    assert {n: s["status"] for n, s in view["balancers"][0]["servers"].items()} == {"o1": "UP", "o2": "UP"}
    assert isinstance(view["alerts"]["mon1"], list)

    stream = LiveStream(lab_up, 600)
    drained = runbook("drain", "o2", "-i", INVENTORY, "--yes")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    view = status()
    o2 = next(o for o in view["orchestrators"] if o["name"] == "o2")
    assert o2["draining"] and o2["gatewayConnections"] == 0 and o2["inFlight"] == 0
    assert not view["balancers"][0]["servers"]["o2"]["inRotation"]
    undrained = runbook("undrain", "o2", "-i", INVENTORY, "--yes")
    assert stream.running(), "the stream must run the whole time"
    summary, output = stream.finish()
    print(drained.stdout[-1200:] + undrained.stdout[-1200:])
    assert undrained.returncode == 0, undrained.stdout + undrained.stderr
    view = status()
    assert not next(o for o in view["orchestrators"] if o["name"] == "o2")["draining"]
    assert view["balancers"][0]["servers"]["o2"]["status"] == "UP"
    text = subprocess.run([sys.executable, "-m", "lpfleet.cli", "status", "-i", INVENTORY], cwd=REPO,
                          capture_output=True, text=True, timeout=120).stdout
    assert text.startswith("ORCHESTRATOR") and "balancer lb1: o1 UP" in text and "alerts (mon1):" in text
    # The stream may have been on o2: moving it costs one new session.
    assert summary["failed"] == 0 and summary["retries"] <= 1, output
