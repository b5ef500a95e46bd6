"""Operations the roles share: templates rendered the same way in deploys and tests, and config
files that are validated before they go live."""

from __future__ import annotations

import posixpath
import shlex
from io import BytesIO, StringIO
from pathlib import Path
from typing import IO, Any

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.api.util import get_file_sha1, get_template
from pyinfra.facts.files import FileContents, Sha1File
from pyinfra.operations import files
from pyinfra.operations.util.files import generate_color_diff

from roles._facts import DirectoryFiles

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

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


@operation()
def validated_template(
    src: str,
    dest: str,
    validate: str,
    user: str = "root",
    group: str = "root",
    mode: str = "644",
    **data: Any,
):
    """Render a template and put it live only if ``validate`` accepts it.

    + src: template name under templates/
    + dest: the live path
    + validate: command that checks a candidate file, ``{path}`` standing for it (``nft -c -f {path}``)

    The candidate is written next to ``dest`` (same directory, so it shares its protection and
    the final ``mv`` is atomic) and checked there; a failed check removes it and leaves the live
    file as it was. Comparing against the live file, not the candidate, means a run after a
    failed one tries again instead of believing the work done.
    """
    content = render(src, **data)
    if host.get_fact(Sha1File, path=dest) == get_file_sha1(StringIO(content)):
        # Same content: only ownership or mode may need fixing, which files.put does.
        yield from files.put._inner(src=StringIO(content), dest=dest, user=user, group=group, mode=mode)
        return

    if state.config.DIFF:
        # Against the live file: the candidate is only a step on the way.
        current = [line + "\n" for line in host.get_fact(FileContents, path=dest) or []]
        host.log(f"Will {'modify' if current else 'create'} {dest}", logger.info)
        for line in generate_color_diff(current, content.splitlines(keepends=True)):
            logger.info("  %s", line)
    directory = posixpath.dirname(dest)
    candidate = posixpath.join(directory, f".{posixpath.basename(dest)}.lpfleet-new")
    yield from files.directory._inner(path=directory, _no_check_owner_mode=True, _no_fail_on_link=True)
    yield from put_commands(BytesIO(content.encode()), candidate, None, user, group, mode)
    check = validate.format(path=shlex.quote(candidate))
    failed = f"lpfleet: {dest} not updated: the new version failed `{validate.format(path=candidate)}`"
    yield StringCommand(f"{check} || {{ echo {shlex.quote(failed)} >&2; rm -f {shlex.quote(candidate)}; exit 1; }}")
    yield StringCommand(f"mv -f {shlex.quote(candidate)} {shlex.quote(dest)}")


def put_commands(src: str | IO[bytes], dest: str, have: tuple | None, user: str, group: str, mode: str):
    """Commands that make ``dest`` hold ``src`` (a local path or bytes IO), owned user:group with
    ``mode``, given what is there now: ``have`` = (sha1, mode as octal digits, user, group), or
    None for nothing. Prints nothing about the content, unlike files.put under --diff."""
    if have is None or have[0] != get_file_sha1(src):
        yield FileUploadCommand(src, dest, remote_temp_filename=host.get_temp_filename(dest))
        have = None
    if have is None or have[2:] != (user, group):
        yield StringCommand(f"chown {shlex.quote(user)}:{shlex.quote(group)} {shlex.quote(dest)}")
    if have is None or have[1] != int(mode):
        yield StringCommand(f"chmod {mode} {shlex.quote(dest)}")


@operation()
def sync_directory(src: str, dest: str, user: str = "root", group: str = "root", mode: str = "644"):
    """Make directory ``dest`` hold exactly the regular files of local directory ``src``.

    + src: local directory (its subdirectories are not copied)
    + dest: remote directory, created if missing

    Like files.sync, but binary-safe under ``pyinfra --diff`` (files.sync tries to diff every
    changed file as text and fails on a wheel) and with one round trip per host to compare the
    whole directory instead of two per file.
    """
    remote = host.get_fact(DirectoryFiles, path=dest)
    yield from files.directory._inner(path=dest, user=user, group=group, mode="755")
    local = {p.name: p for p in sorted(Path(src).iterdir()) if p.is_file()}
    for name, path in local.items():
        yield from put_commands(str(path), posixpath.join(dest, name), remote.get(name), user, group, mode)
    for name in sorted(set(remote) - set(local)):
        yield StringCommand(f"rm -f {shlex.quote(posixpath.join(dest, name))}")
