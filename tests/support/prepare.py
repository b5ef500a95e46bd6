"""Run a role against made-up facts and look at the operations it would run.

For what the lab cannot show (GPU hosts, Ubuntu, a host mid-upgrade): build a pyinfra State
around a one-host Inventory, answer every fact from a dict instead of a connection, run the
@deploy function as pyinfra's prepare stage does, and collect each operation with its commands
and global arguments (``_if`` and friends). Nothing connects anywhere and nothing executes.

    ops = prepare(nvidia, facts={LinuxDistribution: UBUNTU_24_04}, groups=["gpu"], driver_branch="550")
    assert "apt-mark hold nvidia-driver-550-server ..." in ops.commands()
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from pyinfra.api import Config, FileUploadCommand, FunctionCommand, Inventory, State, StringCommand
from pyinfra.api.facts import ShortFactBase
from pyinfra.api.host import Host
from pyinfra.context import ctx_host, ctx_state


def distro(distro_id: str, version_id: str, codename: str) -> dict[str, Any]:
    """A ``LinuxDistribution`` fact as pyinfra reports it."""
    major, _, minor = version_id.partition(".")
    return {
        "name": {"debian": "Debian", "ubuntu": "Ubuntu"}.get(distro_id, distro_id),
        "major": int(major),
        "minor": int(minor) if minor else None,
        "release_meta": {"ID": distro_id, "VERSION_ID": version_id, "VERSION_CODENAME": codename},
    }


DEBIAN_12 = distro("debian", "12", "bookworm")
UBUNTU_24_04 = distro("ubuntu", "24.04", "noble")


@dataclass
class PreparedOp:
    name: str
    commands: list[str]
    global_arguments: dict[str, Any]
    uploads: list[tuple[Any, str]] = field(default_factory=list)  # (src, dest)
    stdin: list[Any] = field(default_factory=list)  # what commands get on stdin (_stdin)

    def secret(self) -> bytes:
        """The bytes of the one secret this op writes (on stdin, roles._ops.install_from_stdin)."""
        [data] = self.stdin
        return base64.b64decode(data)

    @property
    def conditional(self) -> bool:
        """Whether the op runs only if ``_if`` holds at execution time."""
        return bool(self.global_arguments.get("_if"))


class PreparedOps(list[PreparedOp]):
    def names(self) -> list[str]:
        return [op.name for op in self]

    def commands(self, conditional: bool = True) -> list[str]:
        """Every op's commands; ``conditional=False`` leaves out the ops that run only if their
        ``_if`` holds (after another op changed something)."""
        return [cmd for op in self if conditional or not op.conditional for cmd in op.commands]

    def named(self, fragment: str) -> PreparedOp:
        """The one op whose name contains ``fragment``."""
        found = [op for op in self if fragment in op.name]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} operations named like {fragment!r} in {self.names()}")
        return found[0]

    def has(self, fragment: str) -> bool:
        return any(fragment in op.name for op in self)


FactAnswer = Any | Callable[..., Any]


def _answer(facts: Mapping[Any, FactAnswer], cls, kwargs: dict[str, Any]):
    if issubclass(cls, ShortFactBase):
        return cls().process_data(_answer(facts, cls.fact, kwargs))
    for key in ((cls, tuple(sorted(kwargs.items()))), cls, cls.__name__):
        try:
            known = key in facts
        except TypeError:  # arguments that are lists cannot be a key
            continue
        if known:
            answer = facts[key]
            return answer(**kwargs) if callable(answer) and not isinstance(answer, type) else answer
    return cls().default()


def prepare(
    deploy: Callable[..., Any],
    *,
    facts: Mapping[Any, FactAnswer] | None = None,
    data: Mapping[str, Any] | None = None,
    groups: Sequence[str] = (),
    host_name: str = "testhost",
    config: Config | None = None,
    **kwargs: Any,
) -> tuple[PreparedOps, Any]:
    """Prepare ``deploy(**kwargs)`` for one host whose facts are ``facts``.

    ``facts`` maps a fact class (or ``(class, sorted kwargs tuple)`` for one set of arguments,
    or the class name) to its value, or to a function of the fact's arguments; a fact not given
    has its default (what pyinfra returns for a host that lacks the thing). ``config``: pyinfra's
    settings, e.g. ``Config(DIFF=True)`` for what ``--diff`` prints. Returns the prepared
    operations in order and the deploy's return value.
    """
    facts = facts or {}
    inventory = Inventory(
        ([(host_name, dict(data or {}))], {}),
        **{group: ([host_name], {}) for group in groups},
    )
    state = State(inventory, config or Config())
    host = inventory.get_host(host_name)

    def get_fact(self, cls, *args, **fact_kwargs):
        fact_kwargs = {k: v for k, v in fact_kwargs.items() if not k.startswith("_")}
        return _answer(facts, cls, fact_kwargs)

    ops = PreparedOps()
    with mock.patch.object(Host, "get_fact", get_fact), ctx_state.use(state), ctx_host.use(host):
        result = deploy(**kwargs)
        for op_hash in host.op_hash_order:
            meta = state.get_op_meta(op_hash)
            op_data = state.get_op_data_for_host(host, op_hash)
            commands, uploads, stdin = [], [], []
            for command in op_data.command_generator():
                if isinstance(command, StringCommand):
                    commands.append(command.get_raw_value())
                    if command.connector_arguments.get("_stdin") is not None:
                        stdin.append(command.connector_arguments["_stdin"])
                elif isinstance(command, FileUploadCommand):
                    uploads.append((command.src, command.dest))
                    commands.append(f"<upload {command.dest}>")
                elif isinstance(command, FunctionCommand):
                    commands.append(f"<function {getattr(command.function, '__name__', command.function)}>")
                else:
                    commands.append(repr(command))
            ops.append(PreparedOp(
                name=" / ".join(sorted(meta.names)),
                commands=commands,
                global_arguments=dict(op_data.global_arguments),
                uploads=uploads,
                stdin=stdin,
            ))
    return ops, result


def with_settings(model: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for a role whose settings are ``model``: the ones that are its fields go into
    ``settings=model(...)``, the rest stay as they are."""
    names = {f.name for f in dataclasses.fields(model)}
    chosen = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    if "settings" not in kwargs:
        kwargs["settings"] = model(**chosen)
    return kwargs
