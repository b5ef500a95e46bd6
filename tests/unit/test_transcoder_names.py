"""The names transcoders are labelled by on the orchestrator's /metrics and /status."""

from lpnode.core.pool import WorkerSnapshot
from lpnode.core.remote import transcoder_name
from lpnode.monitor import transcoder_labels


def snapshot(name: str, address: str, connected_at: float) -> WorkerSnapshot:
    return WorkerSnapshot(id=address, address=address, name=name, capacity=1, load=0,
                          connected_at=connected_at, in_flight=0, draining=False, penalised=False)


def test_names_fit_for_labels_are_kept():
    assert transcoder_name("gpu-host-3:7935") == "gpu-host-3:7935"
    assert transcoder_name("t1.example.net:7935") == "t1.example.net:7935"


def test_missing_or_unfit_names_fall_back_to_the_address():
    for claimed in (None, "", 'x"} 1\nfake_metric', "a" * 101, "-leading-dash", "has space"):
        assert transcoder_name(claimed) is None


def test_a_name_taken_twice_gets_the_address_on_the_later_registration():
    # A transcoder reconnecting before its old stream is noticed gone registers twice.
    old = snapshot("t1:7935", "10.0.0.21:41000", connected_at=1.0)
    new = snapshot("t1:7935", "10.0.0.21:41022", connected_at=2.0)
    other = snapshot("t2:7935", "10.0.0.22:40100", connected_at=1.5)
    labels = {label: w.address for label, w in transcoder_labels([new, other, old])}
    assert labels == {"t1:7935": "10.0.0.21:41000", "t2:7935": "10.0.0.22:40100",
                      "t1:7935@10.0.0.21:41022": "10.0.0.21:41022"}


def test_session_capacity_is_capped_by_the_orchestrators_own_max_sessions():
    from prometheus_client import generate_latest

    from lpnode.monitor import NodeMetrics

    pool = [snapshot("t1:7935", "10.0.0.21:41000", 1.0), snapshot("t2:7935", "10.0.0.22:4100", 2.0)]
    pool = [WorkerSnapshot(**{**w.__dict__, "capacity": 10}) for w in pool]
    capped, uncapped = NodeMetrics("orch"), NodeMetrics("orch")
    capped.watch_pool(lambda: pool, session_limit=15)
    uncapped.watch_pool(lambda: pool)
    capped_text = generate_latest(capped.registry).decode()
    assert 'livepeer_max_sessions_total{node_type="orch"} 15.0' in capped_text
    assert 'livepeer_transcoders_capacity{node_type="orch"} 20.0' in capped_text
    assert ('livepeer_max_sessions_total{node_type="orch"} 20.0'
            in generate_latest(uncapped.registry).decode())
