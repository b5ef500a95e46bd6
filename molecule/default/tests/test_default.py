"""molecule's verify step: the deployed lab, host by host, with testinfra."""

from __future__ import annotations

import pytest

import lab

SERVICES = {"o1": ["lpnode", "lpnode-reward"], "o2": ["lpnode"], "t1": ["lpnode"], "t2": ["lpnode"],
            "mon1": ["prometheus", "prometheus-alertmanager"], "lb1": ["haproxy"]}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_host_runs_its_services_and_the_firewall(name: str) -> None:
    host = lab.testinfra_host(name)
    for service in [*SERVICES[name], "prometheus-node-exporter", "nftables"]:
        assert host.service(service).is_enabled, f"{name}: {service}"
        if service != "nftables":
            assert host.service(service).is_running, f"{name}: {service}"


@pytest.mark.parametrize("name", ["o1", "o2", "t1", "t2"])
def test_node_secrets_are_the_service_users_only(name: str) -> None:
    host = lab.testinfra_host(name)
    for path in ("/etc/lpnode/orchSecret", "/etc/lpnode/adminToken"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("lpnode", "lpnode", 0o400), path


def test_the_balancer_passes_8935_through_and_checks_ready() -> None:
    host = lab.testinfra_host("lb1")
    assert host.socket("tcp://0.0.0.0:8935").is_listening
    config = host.file("/etc/haproxy/haproxy.cfg").content_string
    assert "option httpchk GET /ready" in config and "server o1 10.77.0.11:8935" in config
