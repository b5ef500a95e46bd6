"""Each fact read once per host until something changes on that host, and the questions a
deploy asked last time asked in one round trip.

pyinfra 3 sends every fact to the host as its own command, every time an operation asks. A
fleet deploy that changes nothing asked the same ~50 questions per host about twice each: 396
round trips on the 4-host lab, most of a no-change re-run (docs/benchmarks.md, "Deploy timings").

``install`` makes ``Host.get_fact`` remember each answer per host, keyed by the fact, its
arguments and the operation's login arguments (``_sudo`` and friends change what a fact can
see). Anything that can change a host forgets that host's answers: every command and file
transfer that is not itself a fact's. So after a change the next operations read fresh facts,
exactly as without the cache.

It also notes which questions each host was asked, and keeps the list on the control machine
(``~/.cache/lpfleet/facts/``); the next run asks all of them at its first question, in one
command per host, each fact's own command with its own parsing, before anything has run. A
question not on the list, or one whose batched answer cannot be read, is asked on its own as
before. A list is only a guess of what will be asked: a wrong one costs time, never
correctness.
"""

from __future__ import annotations

import atexit
import importlib
import inspect
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from pyinfra.api import StringCommand
from pyinfra.api.host import Host
from pyinfra.facts.systemd import SystemdStatus

log = logging.getLogger(__name__)

# Login arguments of the current operation that change what a fact sees.
_AUTH = ("_sudo", "_sudo_user", "_use_sudo_login", "_preserve_sudo_env", "_su_user",
         "_use_su_login", "_preserve_su_env", "_su_shell", "_doas", "_doas_user")
_MARK = "_lpfleet_fact_cache"
# pyinfra's answer when a fact's required command is missing (pyinfra/api/facts.py).
_MISSING = "##PYINFRA_NOCMD##"
_SEP = "##LPFLEET-FACT##"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lpfleet" / "facts"


def install(host_class: Any = Host, learn: bool = True) -> Any:
    """Wrap the fact and command methods of pyinfra's Host (once). ``learn``: keep the
    questions each host was asked (at exit, or when the returned function is called) and batch
    them on the next run."""
    if host_class.__dict__.get(_MARK):
        return host_class.__dict__[_MARK]
    get_fact, run = host_class.get_fact, host_class.run_shell_command
    put, get = host_class.put_file, host_class.get_file
    asked: dict[str, list[dict[str, Any]]] = {}

    def cached_get_fact(self: Any, cls: Any, *args: Any, **kwargs: Any) -> Any:
        auth = _auth(self)
        key = _key(cls, args, kwargs, auth)
        cache = self.__dict__.setdefault("_lpfleet_facts", {})
        if learn and not self.__dict__.get("_lpfleet_prefetched"):
            self.__dict__["_lpfleet_prefetched"] = True
            _prefetch(self, run, cache)
        if key not in cache:
            self.__dict__["_lpfleet_in_fact"] = True
            try:
                cache[key] = get_fact(self, cls, *args, **kwargs)
            finally:
                self.__dict__["_lpfleet_in_fact"] = False
        # Every question of this run, once, whether the batch answered it or not: the next
        # run asks exactly these, so a question no role asks any more drops off the list.
        # Login arguments of its own (`_sudo=False`) put a question in the batch run with them.
        recorded = self.__dict__.setdefault("_lpfleet_recorded", set())
        if learn and key not in recorded and not args \
                and all(k in _AUTH for k in kwargs if k.startswith("_")) and _jsonable(kwargs):
            recorded.add(key)
            asked.setdefault(self.name, []).append(
                {"fact": f"{cls.__module__}:{cls.__qualname__}", "kwargs": kwargs, "auth": auth})
        return cache[key]

    def forgetting(method: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.__dict__.get("_lpfleet_in_fact"):
                self.__dict__.pop("_lpfleet_facts", None)
            return method(self, *args, **kwargs)
        return wrapper

    # No hook for this in pyinfra: see the module's docstring.
    host_class.get_fact = cached_get_fact
    host_class.run_shell_command = forgetting(run)
    host_class.put_file = forgetting(put)
    host_class.get_file = forgetting(get)
    def save() -> None:
        _save(asked)
        asked.clear()

    setattr(host_class, _MARK, save)
    if learn:
        atexit.register(save)
    return save


def _auth(host: Any) -> dict[str, Any]:
    """The login arguments a fact on ``host`` runs with now: the host's own (``_sudo = True``
    in its data), overridden by the current operation's."""
    data = getattr(host, "data", None)
    merged = {k: data.get(k) for k in _AUTH} if data is not None else {}
    merged.update((host.current_op_global_arguments or {}).items())
    return {k: v for k, v in merged.items() if k in _AUTH and v}


def _key(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any], auth: dict[str, Any]) -> tuple[Any, ...]:
    return (cls, repr(args), repr(sorted(kwargs.items())), repr(sorted(auth.items())))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _list_path(host_name: str) -> Path:
    return cache_dir() / (re.sub(r"[^A-Za-z0-9_.-]", "_", host_name) + ".json")


def _save(asked: dict[str, list[dict[str, Any]]]) -> None:
    for host_name, questions in asked.items():
        try:
            path = _list_path(host_name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(questions[:500]) + "\n")
        except OSError as exc:
            log.debug("fact list for %s not saved: %s", host_name, exc)


def _load(host_name: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(_list_path(host_name).read_text())
        return data if isinstance(data, list) else []
    except (OSError, ValueError):
        return []


def _prefetch(host: Any, run: Any, cache: dict[Any, Any]) -> None:
    """Ask the questions of the host's list in one command per set of login arguments."""
    # Grouped by the login arguments the command runs with: the host's, overridden by the
    # question's own (`get_fact(SshClientAddress, _sudo=False)` on a `_sudo = True` host).
    # Only the set ones: the connector takes nothing from the host's data, so a missing
    # `_sudo` is no sudo.
    groups: dict[str, tuple[dict[str, Any], list[tuple[Any, dict[str, Any], dict[str, Any]]]]] = {}
    for q in _load(host.name):
        try:
            module, _, name = q["fact"].partition(":")
            cls: Any = importlib.import_module(module)
            for part in name.split("."):
                cls = getattr(cls, part)
            kwargs, auth = dict(q["kwargs"]), dict(q["auth"])
            login = {k: v for k, v in {**auth, **kwargs}.items() if k in _AUTH and v}
            groups.setdefault(json.dumps(login, sort_keys=True), (login, []))[1].append((cls, kwargs, auth))
        except (ImportError, AttributeError, KeyError, TypeError):
            continue
    for login, questions in groups.values():
        try:
            _ask_together(host, run, login, questions, cache)
        except Exception as exc:  # noqa: BLE001 - a failed batch only means asking one by one
            log.debug("batched facts failed on %s: %s", host.name, exc)


def _ask_together(host: Any, run: Any, login: dict[str, Any],
                  questions: list[tuple[Any, dict[str, Any], dict[str, Any]]], cache: dict[Any, Any]) -> None:
    parts: list[str] = []
    # Each part's answer goes to its questions: (cls, fact, kwargs, auth, lines -> lines for it).
    answers: list[list[tuple[Any, Any, dict[str, Any], dict[str, Any], Any]]] = []
    systemd, others = _systemd_groups(questions)
    for (mode_args, group) in systemd.items():
        command, pick = _systemd_command(mode_args, group)
        parts.append(_part(len(answers), command, "systemctl"))
        answers.append([(cls, cls(), kwargs, auth, pick(kwargs)) for cls, kwargs, auth in group])
    for cls, kwargs, auth in others:
        fact = cls()
        fact_kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        try:
            call = inspect.getcallargs(fact.command, **fact_kwargs) if callable(fact.command) else {}
            call.pop("self", None)
            command = fact.command(**call) if callable(fact.command) else fact.command
            needs = fact.requires_command(**call) if callable(fact.requires_command) else fact.requires_command
        except TypeError:
            continue   # not a question this fact takes any more: asked on its own if asked
        command = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
        if needs:
            needs = needs.get_raw_value() if isinstance(needs, StringCommand) else str(needs)
        parts.append(_part(len(answers), command, needs or None))
        answers.append([(cls, fact, kwargs, auth, lambda lines: lines)])
    if not parts:
        return
    host.__dict__["_lpfleet_in_fact"] = True
    try:
        ok, output = run(host, StringCommand("; ".join(parts)), print_output=False, print_input=False,
                         **login)
    finally:
        host.__dict__["_lpfleet_in_fact"] = False
    if not ok:
        return
    lines: list[str] = []
    index = -1
    for line in output.stdout_lines:
        if line.startswith(f"{_SEP} rc "):
            if index >= 0 and line == f"{_SEP} rc 0" and lines != [_MISSING]:
                for cls, fact, kwargs, auth, select in answers[index]:
                    mine = select(lines)
                    try:
                        cache[_key(cls, (), kwargs, auth)] = fact.process(mine) if mine else fact.default()
                    except Exception:  # noqa: BLE001 - unreadable here: asked on its own later
                        pass
            index, lines = -1, []
        elif line.startswith(f"{_SEP} "):
            index, lines = int(line.split()[1]), []
        else:
            lines.append(line)


def _part(index: int, command: str, needs: str | None) -> str:
    if needs:
        command = f"if command -v {needs} >/dev/null 2>&1; then ( {command} ); else echo '{_MISSING}'; fi"
    return f"echo '{_SEP} {index}'; ( {command} ) 2>/dev/null; echo \"{_SEP} rc $?\""


_SYSTEMD_ARGS = ("user_mode", "machine", "user_name")


def _systemd_groups(questions: list[tuple[Any, dict[str, Any], dict[str, Any]]]) -> tuple[
        dict[tuple[Any, ...], list[tuple[Any, dict[str, Any], dict[str, Any]]]],
        list[tuple[Any, dict[str, Any], dict[str, Any]]]]:
    """pyinfra's systemd facts (SystemdStatus, SystemdEnabled), grouped by fact and the
    systemctl they run: each `systemctl show` costs ~10 ms of the host's CPU (a D-Bus round trip
    to systemd) and a deploy asks about ten per host, so one call per fact answers them all."""
    groups: dict[tuple[Any, ...], list[tuple[Any, dict[str, Any], dict[str, Any]]]] = {}
    others = []
    for cls, kwargs, auth in questions:
        args = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        if issubclass(cls, SystemdStatus) and set(args) <= {*_SYSTEMD_ARGS, "services"} \
                and not args.get("user_mode") and args.get("services") is not None:
            groups.setdefault((cls, *(args.get(k) for k in _SYSTEMD_ARGS)), []).append((cls, kwargs, auth))
        else:
            others.append((cls, kwargs, auth))
    return groups, others


def _systemd_command(mode_args: tuple[Any, ...], group: list[tuple[Any, dict[str, Any], dict[str, Any]]]) -> tuple[
        str, Any]:
    """The fact's own command once for every unit ``group`` asks about, and for each question
    a function picking its units' lines from the answer."""
    cls, *args = mode_args
    units: list[str] = []
    for _, kwargs, _ in group:
        services = kwargs["services"]
        for unit in [services] if isinstance(services, str) else services:
            if unit not in units:
                units.append(unit)
    command = cls().command(**dict(zip(_SYSTEMD_ARGS, args, strict=True)), services=units).get_raw_value()

    def pick(kwargs: dict[str, Any]) -> Any:
        services = kwargs["services"]
        wanted = {services} if isinstance(services, str) else set(services)
        wanted |= {f"{u}.service" for u in wanted if "." not in u}

        def select(lines: list[str]) -> list[str]:
            out, keep = [], False
            for line in lines:
                if line.startswith("Id="):
                    keep = line[3:] in wanted
                if keep or not line.strip():
                    out.append(line)
            return out
        return select
    return command, pick
