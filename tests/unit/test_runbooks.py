"""The runbooks' plans, built from an inventory alone (nothing is reached): who goes in which
order, what is refused before anything runs; and the parsers the steps read HAProxy and pyinfra
with."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from inventory.hosts import describe
from lpfleet import haproxy
from lpfleet.remote import DeployTotals, Fleet, RemoteError, deploy_totals, detected_changes
from runbooks import add_worker, drain, remove_worker, rolling_update, rotate_orch_secret, undrain
from runbooks._steps import Run, expected_capacity


def fleet(tmp_path: Path, **all_data: object) -> Fleet:
    secret = tmp_path / "orchSecret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    data = {"orch_secret_file": str(secret), **all_data}
    hosts = describe({"orchestrators": ["o1", "o2"],
                      "transcoders": [("t1", {"orchestrator": "o1", "lpnode_max_sessions": 4}),
                                      ("t2", {"orchestrator": "o1"}), ("o2", {"lpnode_max_sessions": 2})],
                      "load_balancers": ["lb1"], "monitoring": ["mon1"]},
                     {"all": data})
    return Fleet("inventory/test.py", hosts)


def ids(plan) -> list[str]:
    return [s.id for s in plan.steps()]


def test_rolling_update_goes_canary_first_then_transcoders_then_orchestrators(tmp_path: Path) -> None:
    f = fleet(tmp_path)
    plan = rolling_update.plan(Run(f), None, argparse.Namespace(restart=True))
    assert [w.name for w in plan.waves] == ["canary: t1", "transcoder t2", "orchestrator o1", "orchestrator o2"]
    assert ids(plan)[:4] == ["t1:drain", "t1:update", "t1:back", "t1:verify"]
    assert ids(plan)[8:13] == ["o1:out", "o1:handoff", "o1:update", "o1:back", "o1:verify"]
    # Without --restart each host first asks pyinfra what would change.
    assert rolling_update.plan(Run(f), ["t2"], argparse.Namespace(restart=False)).steps()[0].id == "t2:changes"


def test_the_plan_is_the_same_plan_for_a_resume_only_with_the_same_hosts(tmp_path: Path) -> None:
    f = fleet(tmp_path)
    a = rolling_update.plan(Run(f), ["t1", "o1"], argparse.Namespace(restart=True))
    b = rolling_update.plan(Run(f), ["t1", "o1"], argparse.Namespace(restart=True))
    c = rolling_update.plan(Run(f), ["t1"], argparse.Namespace(restart=True))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_one_host_runbooks_plan_by_the_hosts_role(tmp_path: Path) -> None:
    f = fleet(tmp_path)

    def plan_of(module, host: str) -> list[str]:
        return ids(module.plan(Run(f), None, argparse.Namespace(host=host)))
    assert plan_of(drain, "o1") == ["o1:out", "o1:handoff"]
    assert plan_of(drain, "t1") == ["t1:drain"]
    assert plan_of(undrain, "o1") == ["o1:back", "o1:verify"]
    assert plan_of(undrain, "t1") == ["t1:restart", "t1:back", "t1:verify"]
    assert plan_of(add_worker, "t2") == ["t2:provision", "t2:registered", "o1:capacity", "t2:verify"]
    assert plan_of(remove_worker, "t2") == ["t2:drain", "t2:stop", "t2:secrets", "o1:capacity"]
    with pytest.raises(RemoteError, match="lb1 runs no lpnode"):
        plan_of(drain, "lb1")
    with pytest.raises(RemoteError, match="not a transcoder host"):
        plan_of(remove_worker, "o2")   # it transcodes, but as an orchestrator


def test_expected_capacity_counts_the_inventorys_transcoders_and_its_own(tmp_path: Path) -> None:
    f = fleet(tmp_path)
    assert expected_capacity(f, f.hosts["o1"]) == 4 + 10   # t1's 4, t2 the default 10
    assert expected_capacity(f, f.hosts["o2"]) == 2        # transcodes itself
    assert f.lock_host.name == "mon1"
    assert f.name_at_orchestrator("t1") == "t1:7935"   # the deploy's -transcoderName


def test_rotate_orch_secret_covers_the_whole_fleet_and_needs_one_secret_file(tmp_path: Path) -> None:
    f = fleet(tmp_path)
    plan = rotate_orch_secret.plan(Run(f), None, argparse.Namespace(new_secret_file=None))
    assert ids(plan)[0] == "secret:new" and ids(plan)[1:3] == ["o1:accept-both", "o2:accept-both"]
    assert ids(plan)[-6:-3] == ["t2:new-secret", "o1:drop-old", "o2:drop-old"]
    with pytest.raises(RemoteError, match="without --limit"):
        rotate_orch_secret.plan(Run(f), ["t1"], argparse.Namespace(new_secret_file=None))
    env = Fleet("x", [h if h.name != "t2" else type(h)(h.name, h.groups, {**h.data, "orch_secret_file": "",
                                                                         "orch_secret_env": "SECRET"})
                      for h in f.hosts.values()])
    with pytest.raises(RemoteError, match="one orch_secret_file"):
        rotate_orch_secret.plan(Run(env), None, argparse.Namespace(new_secret_file=None))


def test_the_new_secret_replaces_the_file_and_the_old_is_kept_until_the_end(tmp_path: Path) -> None:
    path = tmp_path / "orchSecret"
    path.write_text("old-secret\n")
    rotation = rotate_orch_secret.Rotation(path, None)
    assert "written" in rotation.write()
    assert rotation.old() == "old-secret" and rotation.new() not in ("", "old-secret")
    assert path.stat().st_mode & 0o777 == 0o600 and rotation.previous.stat().st_mode & 0o777 == 0o600
    new = rotation.new()
    assert "already" in rotation.write() and rotation.new() == new      # a resumed run keeps it
    rotation.finish()
    assert not rotation.previous.exists() and path.read_text().strip() == new


SHOW_STAT = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status
orchestrators,FRONTEND,,,1,2,,4,0,0,0,0,0,,,,,OPEN
orchestrators,o1,0,0,1,1,,4,0,0,,0,,0,0,0,0,UP
orchestrators,o2,0,0,0,0,,0,0,0,,0,,0,0,0,0,NOLB
orchestrators,o3,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2
orchestrators,BACKEND,0,0,1,1,,4,0,0,0,0,,0,0,0,0,UP
prometheus,FRONTEND,,,0,1,,2,0,0,0,0,0,,,,,OPEN
"""


def test_haproxy_show_stat_says_who_is_in_rotation() -> None:
    servers = haproxy.parse_stat(SHOW_STAT)
    assert set(servers) == {"o1", "o2", "o3"}
    assert servers["o1"].in_rotation and servers["o1"].sessions == 1 and servers["o1"].total == 4
    assert not servers["o2"].in_rotation          # disable-on-404: a draining lpnode
    assert servers["o3"].in_rotation and servers["o3"].status == "UP 1/2"


def test_pyinfra_dry_run_changes_are_read_from_its_table() -> None:
    table = """--> Detected changes:
    Operation                                   Change   Conditional Change
    common | Install base packages              -        -
    secrets | orchSecret -> /etc/lpnode/orchSecret (from file x)   1 (t1)   -
    lpnode | lpnode runs the new configuration  -        1 (t1)

    Detected changes may not include every change pyinfra will execute.
"""
    assert detected_changes(table) == ["secrets | orchSecret -> /etc/lpnode/orchSecret (from file x)"]
    assert detected_changes("--> Skipping change detection") == []


def test_pyinfra_run_totals_are_read_from_its_grand_total_row() -> None:
    results = """--> Results:
    Operation                                   Hosts   Success   Error   No Change
    common | Install base packages              6       6         -       -
    common | Time sync (systemd-timesyncd)      6       -         -       6
    Grand total                                 144     136       -       8

--> Disconnecting from hosts...
"""
    assert deploy_totals(results) == DeployTotals(operations=144, changed=136, errors=0, unchanged=8)
    assert deploy_totals("--> Connecting to hosts...\n    [t1] Could not connect") is None
