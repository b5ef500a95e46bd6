"""Each orchestrator's TLS certificate, known to the deploy so that its transcoders can pin it.

go-livepeer's orchestrators make a self-signed certificate on first start and its transcoders
trust whatever they are shown. Here the certificate is settled on the control machine before
any host is touched: the operator's own pair (``tls_cert_file`` and ``tls_key_file`` in the
orchestrator's data), or else a self-signed pair made once per orchestrator in ``tls_dir``
(default ~/.local/share/lpfleet/tls/<host>/, 0700) and kept there like the other secrets the
deploy reads. The orchestrator serves it (-tlsCertFile/-tlsKeyFile) and each of its transcoders
gets the certificate, never the key, for -orchCert.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra.api.exceptions import DeployError

from lpnode.server.tls import ensure_self_signed

DEFAULT_TLS_DIR = "~/.local/share/lpfleet/tls"


@dataclass(frozen=True)
class TlsPair:
    cert: str   # paths on the control machine
    key: str


def orchestrator_pair(name: str, address: str, data: Mapping[str, Any]) -> TlsPair:
    """The pair the orchestrator ``name`` serves on 8935 (``data`` is its inventory data),
    made on first use if the inventory names none."""
    cert, key = data.get("tls_cert_file"), data.get("tls_key_file")
    if cert or key:
        if not (cert and key):
            raise DeployError(f"{name}: tls_cert_file and tls_key_file go together: "
                              "give both (your certificate and its key), or neither for a "
                              "self-signed pair")
        for path in (cert, key):
            if not Path(path).expanduser().is_file():
                raise DeployError(f"{name}: {path} does not exist on this machine")
        return TlsPair(str(Path(cert).expanduser()), str(Path(key).expanduser()))
    base = Path(str(data.get("tls_dir") or DEFAULT_TLS_DIR)).expanduser()
    directory = base / name
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)   # it holds a private key
    made_cert, made_key = ensure_self_signed(directory, address)
    return TlsPair(str(made_cert), str(made_key))
