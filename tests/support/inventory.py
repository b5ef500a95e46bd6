"""What a valid reward host carries in an inventory under test: its keystore (a real 0600 file
on this machine, as validation checks), its password and the RPC URL, both from the
environment (REWARD_ENV)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

REWARD_ENV = {"LPFLEET_KEYSTORE_PASSWORD": "pw", "LPFLEET_ETH_URL": "http://127.0.0.1:8545"}


@cache
def reward_data() -> dict[str, str]:
    where = Path(tempfile.mkdtemp(prefix="lpfleet-test-keystore-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    keystore = where / "reward.json"
    keystore.write_text("{}")
    keystore.chmod(0o600)
    return {"keystore_path": str(keystore), "keystore_password_env": "LPFLEET_KEYSTORE_PASSWORD",
            "eth_url_env": "LPFLEET_ETH_URL"}
