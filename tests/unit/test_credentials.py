"""SharedSecret: rotation keeps the previous secret for a grace period, then marks connections
made with it stale."""

from __future__ import annotations

from lpnode.core import credentials
from lpnode.core.credentials import SharedSecret


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def secret(monkeypatch, grace_s: float = 60.0) -> tuple[SharedSecret, Clock]:
    clock = Clock()
    monkeypatch.setattr(credentials.time, "monotonic", clock)
    return SharedSecret("old-secret", grace_s), clock


def test_only_the_current_secret_matches_before_a_rotation(monkeypatch):
    s, _ = secret(monkeypatch)
    assert s.matches("old-secret") == 1
    assert s.matches("old-secreT") is None and s.matches("") is None


def test_after_a_rotation_both_match_until_the_grace_ends(monkeypatch):
    s, clock = secret(monkeypatch)
    assert s.rotate("new-secret") is True
    assert s.matches("new-secret") == 2 and s.matches("old-secret") == 1
    assert not s.stale(2) and not s.stale(1)
    clock.now += 59.9
    assert s.matches("old-secret") == 1
    clock.now += 0.2
    assert s.matches("old-secret") is None and s.matches("new-secret") == 2
    assert s.stale(1) and not s.stale(2)


def test_rotating_to_the_same_secret_changes_nothing(monkeypatch):
    s, _ = secret(monkeypatch)
    assert s.rotate("old-secret") is False
    assert s.generation == 1 and s.matches("old-secret") == 1


def test_two_rotations_make_the_first_generation_stale_at_once(monkeypatch):
    s, _ = secret(monkeypatch)
    s.rotate("second")
    s.rotate("third")
    assert s.stale(1) and not s.stale(2) and not s.stale(3)
    assert s.matches("old-secret") is None and s.matches("second") == 2


def test_the_value_never_shows_in_its_repr(monkeypatch):
    s, _ = secret(monkeypatch)
    assert "old-secret" not in repr(s) and "old-secret" not in str(s)


def test_dropping_the_previous_secret_ends_the_grace_at_once(monkeypatch):
    s, clock = secret(monkeypatch)
    assert s.drop_previous() is False and s.previous_accepted_s() == 0
    s.rotate("new-secret")
    clock.now += 10
    assert s.previous_accepted_s() == 50
    assert s.drop_previous() is True
    assert s.matches("old-secret") is None and s.matches("new-secret") == 2
    assert s.stale(1) and not s.stale(2) and s.previous_accepted_s() == 0
