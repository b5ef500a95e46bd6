"""Operations the roles share: templates rendered the same way in deploys and tests (templates/
with Jinja's usual delimiters, monitoring/ with square brackets), config files that are
validated before they go live, directories the deploy owns, and the flags and restarts of
services that Debian packages install."""

from __future__ import annotations

import base64
import fnmatch
import functools
import posixpath
import shlex
from io import BytesIO, StringIO
from pathlib import Path
from typing import IO, Any, Literal

import jinja2
from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.api.exceptions import DeployError
from pyinfra.api.util import get_file_sha1, get_template
from pyinfra.facts.files import FileContents, Sha1File
from pyinfra.operations import files, systemd
from pyinfra.operations.util.files import generate_color_diff

from roles._facts import DirectoryFiles, SystemAccount, config_loaded_command, record_sums_command

REPO_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = REPO_DIR / "templates"
MONITORING_DIR = REPO_DIR / "monitoring"

# Block tags on lines of their own leave no blank lines behind, so templates can be laid out
# for reading without the rendered files growing stray whitespace.
_JINJA_OPTIONS = {"trim_blocks": True, "lstrip_blocks": True}


def template_path(name: str) -> str:
    return str(TEMPLATES_DIR / name)


def jinja_options() -> dict[str, Any]:
    # pyinfra pops keys from the dict it is given, so every caller gets its own.
    return dict(_JINJA_OPTIONS)


def render(name: str, **context: Any) -> str:
    """Render templates/NAME exactly as ``files.template`` (and ``validated_template``) will."""
    return get_template(template_path(name), jinja_env_kwargs=jinja_options()).render(**context)


@functools.cache
def _monitoring_env() -> jinja2.Environment:
    # Prometheus and Alertmanager use {{ }} in their own templates (annotations, notification
    # text), so monitoring/ is written with square brackets: monitoring/prometheus/README.md.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(MONITORING_DIR)),
        undefined=jinja2.StrictUndefined,
        variable_start_string="[[", variable_end_string="]]",
        block_start_string="[%", block_end_string="%]",
        comment_start_string="[#", comment_end_string="#]",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


def render_monitoring(name: str, **context: Any) -> str:
    """Render monitoring/NAME (or an absolute path: an operator's own rule file) with the
    square-bracket settings every file under monitoring/ is written for."""
    env = _monitoring_env()
    if Path(name).is_absolute():
        return env.from_string(Path(name).read_text()).render(**context)
    return env.get_template(name).render(**context)


@operation()
def validated_template(
    src: str,
    dest: str,
    validate: str,
    user: str = "root",
    group: str = "root",
    mode: str = "644",
    source: Literal["templates", "monitoring"] = "templates",
    **data: Any,
):
    """Render a template and put it live only if ``validate`` accepts it.

    + src: template name under templates/ (or under monitoring/, see ``source``)
    + dest: the live path
    + validate: command that checks a candidate file, ``{path}`` standing for it (``nft -c -f {path}``)
    + source: ``monitoring`` renders monitoring/SRC with its square-bracket delimiters

    See ``validated_put`` for how the candidate is checked and put live.
    """
    content = render_monitoring(src, **data) if source == "monitoring" else render(src, **data)
    yield from validated_put(content, dest, validate, user, group, mode)


def validated_put(
    content: str,
    dest: str,
    validate: str,
    user: str,
    group: str,
    mode: str,
    secret: bool = False,
):
    """Commands that put ``content`` live at ``dest`` only if ``validate`` accepts it; for
    operations (``yield from``).

    The candidate is written next to ``dest`` (same directory, so it shares its protection and
    the final ``mv`` is atomic) and checked there; a failed check removes it and leaves the live
    file as it was. Comparing against the live file, not the candidate, means a run after a
    failed one tries again instead of believing the work done. ``secret``: the content holds
    secrets, so ``--diff`` says only that it changed.
    """
    if host.get_fact(Sha1File, path=dest) == get_file_sha1(StringIO(content)):
        # Same content: only ownership or mode may need fixing, which files.put does without
        # printing anything when the content is the same.
        yield from files.put._inner(src=StringIO(content), dest=dest, user=user, group=group, mode=mode)
        return

    if state.config.DIFF:
        # Against the live file: the candidate is only a step on the way.
        current = host.get_fact(FileContents, path=dest)
        host.log(f"Will {'modify' if current is not None else 'create'} {dest}", logger.info)
        if secret:
            logger.info("  (diff not shown: the file holds secrets)")
        else:
            for line in generate_color_diff([line + "\n" for line in current or []],
                                            content.splitlines(keepends=True)):
                logger.info("  %s", line)
    candidate = _candidate(dest)
    yield from files.directory._inner(path=posixpath.dirname(dest), _no_check_owner_mode=True,
                                      _no_fail_on_link=True)
    if secret:
        yield install_from_stdin(content.encode(), candidate, user, group, mode)
    else:
        yield from put_commands(BytesIO(content.encode()), candidate, None, user, group, mode)
    check = validate.format(path=shlex.quote(candidate))
    failed = f"lpfleet: {dest} not updated: the new version failed `{validate.format(path=candidate)}`"
    yield StringCommand(f"{check} || {{ echo {shlex.quote(failed)} >&2; rm -f {shlex.quote(candidate)}; exit 1; }}")
    yield StringCommand(f"mv -f {shlex.quote(candidate)} {shlex.quote(dest)}")


@operation()
def system_account(user: str, group: str, home: str, shell: str = "/usr/sbin/nologin"):
    """A system group ``group`` and a system user ``user`` in it with ``home`` (not created)
    and ``shell``: server.group and server.user for one service account, from one cheap fact."""
    have = host.get_fact(SystemAccount, user=user, group=group)
    if not have["group"]:
        yield StringCommand(f"groupadd --system {shlex.quote(group)}")
    wanted = {"group": group, "home": home, "shell": shell}
    if have["user"] is None:
        yield StringCommand(f"useradd --system --gid {shlex.quote(group)} --home-dir {shlex.quote(home)} "
                            f"--no-create-home --shell {shlex.quote(shell)} {shlex.quote(user)}")
        return
    flags = {"group": "--gid", "home": "--home", "shell": "--shell"}
    changes = [f"{flags[k]} {shlex.quote(v)}" for k, v in wanted.items() if have["user"][k] != v]
    if changes:
        yield StringCommand(f"usermod {' '.join(changes)} {shlex.quote(user)}")


@operation()
def remove_stale_files(directory: str, keep: list[str], pattern: str = "*"):
    """Remove the files matching ``pattern`` in ``directory`` that are not in ``keep``.

    For directories the deploy owns: a rule file it no longer ships would otherwise stay
    loaded forever, a receiver secret no longer used would stay on the disk.
    """
    present = host.get_fact(DirectoryFiles, path=directory)
    for name in sorted(set(present) - set(keep)):
        if fnmatch.fnmatchcase(name, pattern):
            yield StringCommand(f"rm -f {shlex.quote(posixpath.join(directory, name))}")


def put_commands(src: str | IO[bytes], dest: str, have: tuple | None, user: str, group: str, mode: str):
    """Commands that make ``dest`` hold ``src`` (a local path or bytes IO), owned user:group with
    ``mode``, given what is there now: ``have`` = (sha1, mode as octal digits, user, group), or
    None for nothing. Prints nothing about the content, unlike files.put under --diff."""
    if have is None or have[0] != get_file_sha1(src):
        yield FileUploadCommand(src, dest, remote_temp_filename=host.get_temp_filename(dest))
        have = None
    yield from _owner_and_mode(dest, have, user, group, mode)


def _owner_and_mode(dest: str, have: tuple | None, user: str, group: str, mode: str):
    """chown/chmod ``dest`` where ``have`` (None: a new file) differs from what is wanted."""
    if have is None or have[2:] != (user, group):
        yield StringCommand(f"chown {shlex.quote(user)}:{shlex.quote(group)} {shlex.quote(dest)}")
    if have is None or have[1] != int(mode):
        yield StringCommand(f"chmod {mode} {shlex.quote(dest)}")


def install_from_stdin(data: bytes, path: str, user: str, group: str, mode: str,
                       then: str = "") -> StringCommand:
    """A command that writes ``data``, a secret, to ``path``, created with ``mode`` and its
    owner; ``then`` runs after it if it succeeded. The bytes travel on the command's stdin:
    pyinfra's upload would first put them in a file in /tmp (with ``_sudo``, created with the
    SFTP server's umask, so readable by every local user until it is moved)."""
    command = (f"base64 -d | install -m {shlex.quote(mode)} -o {shlex.quote(user)} "
               f"-g {shlex.quote(group)} /dev/stdin {shlex.quote(path)}")
    # base64: pyinfra writes stdin as lines and would add a newline the secret lacks.
    return StringCommand(f"{command} && {then}" if then else command,
                         _stdin=base64.b64encode(data).decode())


def put_secret_commands(data: bytes, dest: str, have: tuple | None, user: str, group: str, mode: str):
    """``put_commands`` for a secret: written through ``install_from_stdin`` to a candidate
    next to ``dest`` and moved over it, so ``dest`` is never half-written."""
    if have is None or have[0] != get_file_sha1(BytesIO(data)):
        candidate = _candidate(dest)
        yield install_from_stdin(data, candidate, user, group, mode,
                                 then=f"mv -f {shlex.quote(candidate)} {shlex.quote(dest)}")
        return
    yield from _owner_and_mode(dest, have, user, group, mode)


def _candidate(dest: str) -> str:
    """Where a new version of ``dest`` is written first: beside it, so that it shares its
    directory's protection and the final ``mv`` is atomic."""
    return posixpath.join(posixpath.dirname(dest), f".{posixpath.basename(dest)}.lpfleet-new")


@operation()
def sync_directory(
    src: str, dest: str, user: str = "root", group: str = "root", mode: str = "644", pattern: str = "*",
):
    """Make directory ``dest`` hold exactly the regular files of local directory ``src``.

    + src: local directory (its subdirectories are not copied)
    + dest: remote directory, created if missing
    + pattern: only the local files whose names match (``*.json``)

    Like files.sync, but binary-safe under ``pyinfra --diff`` (files.sync tries to diff every
    changed file as text and fails on a wheel) and with one round trip per host to compare the
    whole directory instead of two per file.
    """
    remote = host.get_fact(DirectoryFiles, path=dest)
    yield from files.directory._inner(path=dest, user=user, group=group, mode="755")
    local = {p.name: p for p in sorted(Path(src).iterdir()) if p.is_file() and fnmatch.fnmatchcase(p.name, pattern)}
    changes: list[Any] = []
    for name, path in local.items():
        changes.extend(put_commands(str(path), posixpath.join(dest, name), remote.get(name), user, group, mode))
    for name in sorted(set(remote) - set(local)):
        changes.append(StringCommand(f"rm -f {shlex.quote(posixpath.join(dest, name))}"))
    yield from changes
    # The checksums the next run's DirectoryFiles reuses (see roles._facts.SUMS_FILE).
    if changes or getattr(remote, "hashed", None):
        yield StringCommand(record_sums_command(dest))


def service_flags(label: str, defaults_file: str, args: list[str]):
    """``ARGS="..."`` in a Debian package's /etc/default file, which its unit passes to the
    daemon (``ExecStart=/usr/bin/prometheus $ARGS``). Returns the operation's meta.

    systemd splits ``$ARGS`` on whitespace and does no shell quoting, so a flag can hold no
    space or quote; such a value is refused here rather than silently split in two.
    """
    for arg in args:
        if any(c in arg for c in " \t\n\"'\\"):
            raise DeployError(f"{host.name}: {label} flag {arg!r}: flags cannot contain spaces, quotes or backslashes")
    return files.template(
        name=f"{label} flags ({defaults_file})",
        src=template_path("service-args.default.j2"),
        dest=defaults_file,
        mode="644",
        jinja_env_kwargs=jinja_options(),
        label=label,
        args=args,
    )


@operation()
def wait_config_loaded(label: str, metrics_url: str, prefix: str, patterns: list[str], timeout_s: int = 60):
    """Wait until a Prometheus-style service runs the configuration on disk (its last
    successful reload is newer than every file; roles._facts.ConfigLoaded). `systemctl reload`
    only sends the signal: without this a deploy could end before the reload did, and the next
    run would take the reload still in flight for a stale configuration and reload again."""
    check = config_loaded_command(metrics_url, prefix, patterns)
    failed = f"lpfleet: {label} did not load its configuration within {timeout_s} s; see its journal"
    yield StringCommand(
        f"for i in $(seq {timeout_s * 2}); do [ \"$({check})\" = loaded ] && exit 0; sleep 0.5; done; "
        f"echo {shlex.quote(failed)} >&2; exit 1")


def packaged_service(label: str, service: str, restart: bool, reload: bool = False, daemon_reload: bool = False):
    """Keep a service that a Debian package installed running and enabled; restart it (new
    flags, new package) or reload it (new configuration) as the run requires.

    A first install starts the service from the package's postinst, with the package's own
    flags and configuration, before this run writes lpfleet's; the facts were gathered before
    the install, so pyinfra would only ``start`` it (a no-op by then). ``restart`` therefore
    always restarts, whatever the facts said.
    """
    return systemd.service(
        name=f"{label} running and enabled at boot",
        service=service,
        running=True,
        enabled=True,
        command="restart" if restart else None,
        reloaded=reload and not restart,
        daemon_reload=daemon_reload,
    )
