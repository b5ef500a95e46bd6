"""Each fact read once per host until something changes on that host.

pyinfra 3 sends every fact to the host as its own command, every time an operation asks, and
asks again when it runs the operation's generator a second time to execute it. A fleet deploy
that changes nothing asked the same ~50 questions per host about twice each: 396 round trips
on the 4-host lab, most of a no-change re-run (docs/benchmarks.md, "Deploy timings").

``install`` makes ``Host.get_fact`` remember each answer per host, keyed by the fact, its
arguments and the operation's login arguments (``_sudo`` and friends change what a fact can
see). Anything that can change a host forgets that host's answers: every command and file
transfer that is not itself a fact's. So a re-run that changes nothing asks each question once,
and after a change the next operations read fresh facts, exactly as without the cache.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api.host import Host

# Login arguments of the current operation that change what a fact sees.
_AUTH = ("_sudo", "_sudo_user", "_use_sudo_login", "_preserve_sudo_env", "_su_user",
         "_use_su_login", "_preserve_su_env", "_su_shell", "_doas", "_doas_user")
_MARK = "_lpfleet_fact_cache"


def install(host_class: Any = Host) -> None:
    """Wrap the fact and command methods of pyinfra's Host (idempotent)."""
    if host_class.__dict__.get(_MARK, False):
        return
    setattr(host_class, _MARK, True)
    get_fact, run = host_class.get_fact, host_class.run_shell_command
    put, get = host_class.put_file, host_class.get_file

    def cached_get_fact(self: Any, cls: Any, *args: Any, **kwargs: Any) -> Any:
        op: dict[str, Any] = dict(self.current_op_global_arguments or {})
        key = (cls, repr(args), repr(sorted(kwargs.items())),
               repr([(k, op.get(k)) for k in _AUTH if op.get(k)]))
        cache = self.__dict__.setdefault("_lpfleet_facts", {})
        if key not in cache:
            self.__dict__["_lpfleet_in_fact"] = True
            try:
                cache[key] = get_fact(self, cls, *args, **kwargs)
            finally:
                self.__dict__["_lpfleet_in_fact"] = False
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
