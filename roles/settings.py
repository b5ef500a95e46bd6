"""Each role's inputs from the inventory, declared once.

A role's settings are a frozen dataclass: one field per setting, with its type, its default, the
sentence that documents it and, where a type is not enough, a check. The inventory key of a field
is the role's prefix plus the field's name (``lpnode_max_sessions``). Everything else reads the
model: deploys/fleet.py builds it from a host's data (``from_data``), inventory/validate.py asks
it for problems before any host is touched (``problems``), the roles take it as their
``settings`` argument, and the settings table in docs/operators-guide.md is generated from it
(``python -m roles.settings``; a test fails when the page is stale).

A key under a role's prefix that is not one of its fields (``lpnode_max_sesions``) is an error
naming the closest valid key, so a typo cannot be silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Self

from pyinfra.api.exceptions import DeployError

Check = Callable[[Any], str | None]   # None when the value is fine, else what is wrong with it

# A Prometheus duration (also Alertmanager's): one or more number+unit pairs.
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def setting(default: Any = dataclasses.MISSING, *, doc: str, check: Check | None = None,
            factory: Callable[[], Any] | None = None, secret: bool = False) -> Any:
    """A settings field: its default (or ``factory`` for a mutable one), documentation and check.
    ``secret``: a problem with it never shows its value."""
    metadata = {"doc": doc, "check": check, "secret": secret}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def duration(value: Any) -> str | None:
    return None if DURATION.match(str(value)) else "is not a duration: a number and a unit, e.g. 15s, 5m, 30d"


def at_least(low: int) -> Check:
    def check(value: Any) -> str | None:
        return None if value >= low else f"must be {low} or more"
    return check


@dataclasses.dataclass(frozen=True)
class RoleSettings:
    """Base of every role's settings. Subclasses set PREFIX (the inventory keys' prefix) and
    ROLE (the role's name, for messages and the docs)."""

    PREFIX: ClassVar[str] = ""
    ROLE: ClassVar[str] = ""

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field[Any]]:
        """Inventory key -> field."""
        return {cls.PREFIX + f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def problems(cls, data: Mapping[str, Any], required: bool = True) -> list[str]:
        """What is wrong with this role's settings in a host's ``data``, each naming the key
        and the fix; empty when they are fine. ``required``: the role runs on the host, so its
        settings without a default must be there."""
        fields = cls.fields()
        hints = _hints(cls)
        found = []
        if cls.PREFIX:
            for key in sorted(k for k in data if k.startswith(cls.PREFIX) and k not in fields):
                close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}?" if close else f"the {cls.ROLE} settings are: {', '.join(fields)}"
                found.append(f"{key} is not a setting of the {cls.ROLE} role; {hint}")
        for key, f in fields.items():
            if key not in data:
                if required and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    found.append(f"{key} is not set: {f.metadata['doc']}")
                continue
            value = data[key]
            wrong = _type_problem(value, hints[f.name])
            if wrong is None and f.metadata.get("check") is not None:
                wrong = f.metadata["check"](value)
            if wrong is not None:
                found.append(f"{key} {wrong}" if f.metadata["secret"] else f"{key} = {value!r} {wrong}")
        return found

    @classmethod
    def from_data(cls, host_name: str, data: Mapping[str, Any]) -> Self:
        """The settings in a host's data (defaults for the rest); raises DeployError listing
        every problem."""
        problems = cls.problems(data)
        if problems:
            raise DeployError(f"{host_name}: " + "; ".join(problems))
        return cls(**{f.name: data[key] for key, f in cls.fields().items() if key in data})

    def __post_init__(self) -> None:
        # Settings built in code (tests, other tools) get the same checks as the inventory's.
        problems = type(self).problems({type(self).PREFIX + f.name: getattr(self, f.name)
                                        for f in dataclasses.fields(self)})
        if problems:
            raise ValueError("; ".join(problems))


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))


def _type_problem(value: Any, annotation: Any) -> str | None:
    """None if ``value`` fits ``annotation``, else what it should be."""
    return None if _fits(value, annotation) else f"should be {_describe(annotation)}"


def _fits(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        item = args[0] if args else Any
        return isinstance(value, list | tuple) and all(_fits(v, item) for v in value)
    if origin is dict:
        key, item = args if args else (Any, Any)
        return isinstance(value, dict) and all(_fits(k, key) and _fits(v, item) for k, v in value.items())
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _describe(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if annotation is type(None):
        return "None"
    if origin in (list, tuple):
        return f"a list of {_describe(args[0]) if args else 'values'}"
    if origin is dict:
        return "a mapping"
    names = {bool: "True or False", int: "a whole number", float: "a number", str: "a string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def markdown(models: list[type[RoleSettings]]) -> str:
    """The settings table of docs/operators-guide.md."""
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for model in models:
        for key, f in model.fields().items():
            if f.default is not dataclasses.MISSING:
                default = f"`{f.default!r}`"
            elif f.default_factory is not dataclasses.MISSING:
                default = f"`{f.default_factory()!r}`"
            else:
                default = "required"
            doc = " ".join(f.metadata["doc"].split()).replace("|", "\\|")
            lines.append(f"| `{key}` | {default} | {doc} |")
    return "\n".join(lines) + "\n"


def all_models() -> list[type[RoleSettings]]:
    """Every role's settings, in the order of the docs."""
    from roles.alertmanager import AlertmanagerSettings
    from roles.common import CommonSettings
    from roles.grafana import GrafanaSettings
    from roles.haproxy import HaproxySettings
    from roles.node import NodeSettings
    from roles.node_exporter import NodeExporterSettings
    from roles.nvidia import NvidiaSettings
    from roles.prometheus import PrometheusSettings
    from roles.redeemer import RedeemerSettings
    from roles.reward import RewardSettings
    from runbooks.settings import RunbookSettings  # not a role, but read from the same inventory

    return [CommonSettings, NodeSettings, RewardSettings, RedeemerSettings, NvidiaSettings, NodeExporterSettings,
            PrometheusSettings, AlertmanagerSettings, GrafanaSettings, HaproxySettings, RunbookSettings]


if __name__ == "__main__":
    print(markdown(all_models()), end="")
