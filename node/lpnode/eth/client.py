"""The chain as lpnode sees it: one JSON-RPC endpoint, the Controller and the contracts it names.

Connecting checks what go-livepeer leaves to chance: the Controller address has code, the
chain id is the one this datadir was first used with (a datadir moved to another network
would sign for the wrong chain), every contract is registered. The RPC URL often carries a
provider's API key, so it is only ever shown as ``redact(url)``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eth_utils import keccak, to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3

from lpnode.eth import abi

log = logging.getLogger("lpnode.eth")

ZERO_ADDRESS = "0x" + "00" * 20


class ChainConfigError(ValueError):
    """The chain does not match the flags or the datadir; the message says what to fix.
    Not worth retrying: the node exits."""


def redact(url: str) -> str:
    """``url`` without what may be a secret (user info, path, query): scheme://host[:port]/…"""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<the -ethUrl value, not shown>"
    hidden = "/…" if (parts.path.strip("/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


def contract_id(name: str) -> bytes:
    return keccak(text=name)


@dataclass
class Contracts:
    """The protocol contracts, resolved through the Controller."""

    controller: Any
    bonding_manager: Any
    rounds_manager: Any
    minter: Any
    token: Any
    service_registry: Any
    ticket_broker: Any


class Chain:
    """A web3 connection plus the resolved contracts."""

    def __init__(self, rpc_url: str, controller: str, datadir: str, timeout_s: float = 30) -> None:
        self.rpc_url = rpc_url
        self.controller_address = to_checksum_address(controller)
        self.datadir = Path(datadir)
        self.w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        self.chain_id: int | None = None
        self.contracts: Contracts | None = None

    @property
    def where(self) -> str:
        return redact(self.rpc_url)

    async def connect(self) -> Contracts:
        """Check the chain and resolve the contracts. Raises ChainConfigError for what the
        operator must fix, and web3/aiohttp errors for an endpoint that does not answer."""
        chain_id = int(await self.w3.eth.chain_id)
        self._check_chain_id(chain_id)
        code = await self.w3.eth.get_code(self.controller_address)
        if not code or code == b"\0" * len(code):
            raise ChainConfigError(
                f"-ethController {self.controller_address} has no contract code on chain {chain_id} "
                f"({self.where}): check -ethController and -network (and that -ethUrl is the right chain)")
        controller = self.w3.eth.contract(address=self.controller_address, abi=abi.CONTROLLER)
        resolved = {}
        for name, contract_abi in abi.BY_NAME.items():
            address = await controller.functions.getContract(contract_id(name)).call()
            if address == ZERO_ADDRESS:
                raise ChainConfigError(f"the Controller {self.controller_address} has no {name} registered: "
                                       "is -ethController the protocol's Controller?")
            resolved[name] = self.w3.eth.contract(address=address, abi=contract_abi)
        self.chain_id = chain_id
        self.contracts = Contracts(controller=controller, bonding_manager=resolved["BondingManager"],
                                   rounds_manager=resolved["RoundsManager"], minter=resolved["Minter"],
                                   token=resolved["LivepeerToken"], service_registry=resolved["ServiceRegistry"],
                                   ticket_broker=resolved["TicketBroker"])
        return self.contracts

    def _check_chain_id(self, chain_id: int) -> None:
        """Pin the datadir to the chain it was first used with (go-livepeer: checkOrStoreChainID)."""
        path = self.datadir / "chain-id"
        try:
            recorded = int(path.read_text().strip())
        except FileNotFoundError:
            self.datadir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".new")
            tmp.write_text(f"{chain_id}\n")
            os.replace(tmp, path)
            return
        except ValueError:
            raise ChainConfigError(f"{path} is not a chain id: remove it and restart to record the chain's") from None
        if recorded != chain_id:
            raise ChainConfigError(
                f"-ethUrl {self.where} is chain {chain_id}, but this datadir ({self.datadir}) was used "
                f"with chain {recorded}: point -ethUrl at chain {recorded}, or give this network its "
                "own -datadir")
