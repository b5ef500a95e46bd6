"""roles.op_order gives the operation order pyinfra's own stack walk gives."""

from __future__ import annotations

from types import SimpleNamespace

import pyinfra
import pytest

from roles.op_order import operation_order, original


def nested(state, depth: int):
    if depth:
        return nested(state, depth - 1)
    # Both on one line: the caller's line number is part of the answer.
    return original()(state), operation_order(state)


@pytest.mark.parametrize("is_cli", [False, True])
@pytest.mark.parametrize("deploy_file", [None, __file__, "/not/on/the/stack.py"])
def test_same_order_as_pyinfra(monkeypatch, is_cli: bool, deploy_file: str | None) -> None:
    monkeypatch.setattr(pyinfra, "is_cli", is_cli)
    state = SimpleNamespace(current_deploy_filename=deploy_file, current_op_file_number=7)
    theirs, ours = nested(state, 3)
    assert ours == theirs
    if deploy_file == "/not/on/the/stack.py":
        assert ours == ([7] if is_cli else [])
    else:  # the test's own frames count: nested() four times and this test
        assert len(ours) >= 5 + is_cli
