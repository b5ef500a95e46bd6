"""Loading the orchestrator/transcoder shared secret (-orchSecret).

go-livepeer reads -orchSecret as a file when a file of that name exists and
otherwise silently uses the value itself, so a mistyped path becomes the
secret and the orchestrator and transcoder just fail to authenticate. lpnode
treats anything that looks like a path as a path and insists that the file
exists, is a private regular file and is not empty.

The secret never appears in a log record or an exception message: errors
name the file, never its content.
"""

from __future__ import annotations

import logging
import os
import shlex
import stat
from urllib.parse import urlsplit

# A secret is a line of text; anything bigger is the wrong file (a log, a binary).
_MAX_SECRET_FILE_BYTES = 64 * 1024

_FILE_HELP = (
    "put the secret alone in a file owned by the user lpnode runs as, with mode 0600 or 0400 "
    "(e.g. `install -m 600 -o lpnode /dev/null FILE`, then write the secret into FILE)"
)


class SecretError(ValueError):
    """The -orchSecret value or file is unusable; the message says how to fix it."""


def looks_like_path(value: str) -> bool:
    """True when lpnode reads -orchSecret as a file path rather than the secret itself."""
    return "/" in value or value.startswith((".", "~"))


def _is_plainly_path(value: str) -> bool:
    # A base64 secret may contain "/" and so be taken for a relative path: only values that
    # are unmistakably paths are repeated back in messages.
    return value.startswith(("/", "~", "."))


def _describe(path: str, flag: str) -> str:
    if _is_plainly_path(path):
        return f"{flag} file {path!r}"
    return (
        f"the {flag} file (its name is not repeated in case it is the secret itself; "
        "a secret containing '/' must be put in a file)"
    )


def read_secret_file(path: str, flag: str = "-orchSecret") -> str:
    """Read and check the secret file given to ``flag``; used at startup and again on SIGHUP.

    Leading and trailing whitespace is dropped (as go-livepeer does), so a
    trailing newline is fine.
    """
    where = _describe(path, flag)
    full = os.path.expanduser(path)
    try:
        # O_NONBLOCK: opening a FIFO by mistake must fail the checks below, not hang startup.
        fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretError(f"{where} does not exist: {_FILE_HELP}, or fix the path") from None
    except PermissionError:
        raise SecretError(
            f"{where} cannot be read by this user (permission denied): make the user lpnode runs as "
            "its owner, e.g. `chown lpnode FILE && chmod 600 FILE`"
        ) from None
    except OSError as exc:
        raise SecretError(f"{where} cannot be opened: {exc.strerror}") from None
    try:
        # fstat on the open descriptor: the checks apply to exactly the file that is read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{where} is not a regular file: {_FILE_HELP}")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            target = shlex.quote(full) if _is_plainly_path(path) else "FILE"
            raise SecretError(
                f"{where} has mode {mode:04o}, which lets group or others access it; a shared "
                f"secret must be private to the service user: run `chmod 600 {target}`"
            )
        data = b""
        while len(data) <= _MAX_SECRET_FILE_BYTES:
            chunk = os.read(fd, _MAX_SECRET_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > _MAX_SECRET_FILE_BYTES:
        raise SecretError(
            f"{where} is larger than {_MAX_SECRET_FILE_BYTES} bytes, too big for a secret; "
            f"check that {flag} names the right file"
        )
    try:
        secret = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretError(f"{where} is not UTF-8 text; the secret must be a line of text") from None
    if not secret:
        raise SecretError(f"{where} is empty: write the secret into it (one line)")
    return secret


def load_rpc_url(value: str, *, log: logging.Logger) -> str:
    """The -ethUrl endpoint: the value itself (go-livepeer's form), or the URL inside the file it
    names. Providers put the API key in the URL, so the deploy passes a file (0400, the service
    user's) and a keyed URL given inline gets the warning a literal orchSecret gets."""
    if _is_plainly_path(value):
        url = read_secret_file(value, "-ethUrl")
        log.info("ethUrl loaded from %s", value)
    else:
        url = value.strip()
        parts = urlsplit(url)
        if parts.username or parts.password or parts.query or any(len(seg) >= 16 for seg in parts.path.split("/")):
            log.warning(
                "-ethUrl looks like it carries an API key, and on the command line it is visible to "
                "every local user in `ps` and /proc: put the URL in a file owned by the service "
                "user with mode 0600 and pass -ethUrl /path/to/file")
    if urlsplit(url).scheme not in ("http", "https", "ws", "wss"):
        raise SecretError("-ethUrl is not an http(s) or ws(s) URL"
                          + (f" (read from {value})" if _is_plainly_path(value) else "")
                          + ": give the JSON-RPC endpoint, e.g. https://arb1.arbitrum.io/rpc")
    return url


def load_orch_secret(value: str, *, log: logging.Logger) -> str:
    """Turn the raw -orchSecret value into the secret itself."""
    return load_secret(value, "-orchSecret", log=log)


def load_secret(value: str, flag: str, *, log: logging.Logger) -> str:
    """Turn the raw value of a secret flag (-orchSecret, -ethPassword) into the secret itself:
    the file it names, or, with a warning, the value."""
    if not value.strip():
        raise SecretError(f"{flag} is empty: give the path of a file holding the secret")
    # A bare name that is an existing file is read as one, as go-livepeer does; using the
    # file's name as the secret would only fail later, at authentication.
    if looks_like_path(value) or os.path.lexists(value):
        secret = read_secret_file(value, flag)
        log.info("%s loaded from %s", flag.lstrip("-"), value if _is_plainly_path(value) else "its file")
        return secret
    log.warning(
        "%s holds the secret itself, not a file path: on the command line it is visible "
        "to every local user in `ps` and /proc; put it in a file owned by the service user with "
        "mode 0600 and pass %s /path/to/file", flag, flag
    )
    return value
