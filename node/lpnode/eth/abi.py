"""The parts of the protocol contracts' ABIs that lpnode uses, written as Solidity signatures.

Every function and event here must match livepeer/protocol on Arbitrum One exactly (name,
argument types, return layout): tests/unit/test_eth_abi.py checks each selector and topic
against the reference table, and tests/integration/test_chain_contracts.py against the local
chain's contracts.
"""

from __future__ import annotations

import re
from typing import Any

from eth_utils import function_signature_to_4byte_selector, keccak

_ITEM = re.compile(
    r"^(?P<kind>function|event)\s+(?P<name>\w+)\((?P<args>[^)]*)\)"
    r"(?:\s+(?P<mutability>view|nonpayable|payable))?(?:\s+returns\s+\((?P<outputs>[^)]*)\))?$"
)


# Structs the TicketBroker takes and returns, by name, with the protocol's field order
# (MTicketBrokerCore.sol's Ticket, Sender; MReserve.sol's ReserveInfo). A signature names them
# as types: `function getTicketHash(Ticket _ticket)`.
STRUCTS = {
    "Ticket": "address recipient, address sender, uint256 faceValue, uint256 winProb, uint256 senderNonce, "
              "bytes32 recipientRandHash, bytes auxData",
    "Sender": "uint256 deposit, uint256 withdrawRound",
    "ReserveInfo": "uint256 fundsRemaining, uint256 claimedInCurrentRound",
}


def _params(text: str, event: bool = False) -> list[dict[str, Any]]:
    params = []
    for i, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        words = part.split()
        indexed = "indexed" in words
        words = [w for w in words if w != "indexed"]
        param: dict[str, Any] = {"type": words[0], "name": words[1] if len(words) > 1 else f"arg{i}"}
        struct, brackets, rest = words[0].partition("[")
        if struct in STRUCTS:
            param.update(type="tuple" + brackets + rest, components=_params(STRUCTS[struct]), internalType=f"struct {struct}")
        if event:
            param["indexed"] = indexed
        params.append(param)
    return params


def _canonical(param: dict[str, Any]) -> str:
    """A parameter's type as selectors spell it: a struct is the tuple of its fields' types."""
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in param["components"]) + ")" + param["type"][len("tuple"):]
    return str(param["type"])


def parse(signatures: str) -> list[dict[str, Any]]:
    """An ABI (list of dicts) from one Solidity-style signature per line."""
    abi = []
    for line in (s.strip() for s in signatures.strip().splitlines()):
        m = _ITEM.match(line)
        if not m:
            raise ValueError(f"not a signature: {line!r}")
        if m["kind"] == "event":
            abi.append({"type": "event", "name": m["name"], "inputs": _params(m["args"], event=True),
                        "anonymous": False})
        else:
            abi.append({"type": "function", "name": m["name"], "inputs": _params(m["args"]),
                        "outputs": _params(m["outputs"] or ""),
                        "stateMutability": m["mutability"] or "nonpayable"})
    return abi


def signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(_canonical(p) for p in item['inputs'])})"


def selector(item: dict[str, Any]) -> str:
    """A function's 4-byte selector as 8 hex digits."""
    return function_signature_to_4byte_selector(signature(item)).hex()


def topic(item: dict[str, Any]) -> str:
    """An event's topic 0 as 0x-prefixed hex."""
    return "0x" + keccak(text=signature(item)).hex()


CONTROLLER = parse("""
function getContract(bytes32 _id) view returns (address)
function paused() view returns (bool)
""")

BONDING_MANAGER = parse("""
function getTranscoder(address _transcoder) view returns (uint256 lastRewardRound, uint256 rewardCut, uint256 feeShare, uint256 lastActiveStakeUpdateRound, uint256 activationRound, uint256 deactivationRound, uint256 activeCumulativeRewards, uint256 cumulativeRewards, uint256 cumulativeFees, uint256 lastFeeRound)
function transcoderStatus(address _transcoder) view returns (uint8)
function isActiveTranscoder(address _transcoder) view returns (bool)
function getTranscoderPoolSize() view returns (uint256)
function getTranscoderPoolMaxSize() view returns (uint256)
function getFirstTranscoderInPool() view returns (address)
function getNextTranscoderInPool(address _transcoder) view returns (address)
function transcoderTotalStake(address _transcoder) view returns (uint256)
function getTotalBonded() view returns (uint256)
function getTranscoderEarningsPoolForRound(address _transcoder, uint256 _round) view returns (uint256 totalStake, uint256 transcoderRewardCut, uint256 transcoderFeeShare, uint256 cumulativeRewardFactor, uint256 cumulativeFeeFactor)
function getDelegator(address _delegator) view returns (uint256 bondedAmount, uint256 fees, address delegateAddress, uint256 delegatedAmount, uint256 startRound, uint256 lastClaimRound, uint256 nextUnbondingLockId)
function bond(uint256 _amount, address _to) nonpayable
function transcoder(uint256 _rewardCut, uint256 _feeShare) nonpayable
function reward() nonpayable
function rewardWithHint(address _newPosPrev, address _newPosNext) nonpayable
function setRewardCaller(address _rewardCaller) nonpayable
function transcoderToRewardCaller(address _transcoder) view returns (address)
function rewardForTranscoder(address _transcoder) nonpayable
function rewardForTranscoderWithHint(address _transcoder, address _newPosPrev, address _newPosNext) nonpayable
event Reward(address indexed transcoder, uint256 amount)
event TranscoderUpdate(address indexed transcoder, uint256 rewardCut, uint256 feeShare)
event TranscoderActivated(address indexed transcoder, uint256 activationRound)
event TranscoderDeactivated(address indexed transcoder, uint256 deactivationRound)
event Bond(address indexed newDelegate, address indexed oldDelegate, address indexed delegator, uint256 additionalAmount, uint256 bondedAmount)
event RewardCallerSet(address indexed transcoder, address indexed rewardCaller)
""")

ROUNDS_MANAGER = parse("""
function roundLength() view returns (uint256)
function blockNum() view returns (uint256)
function currentRound() view returns (uint256)
function currentRoundStartBlock() view returns (uint256)
function currentRoundInitialized() view returns (bool)
function currentRoundLocked() view returns (bool)
function lastInitializedRound() view returns (uint256)
function blockHash(uint256 _block) view returns (bytes32)
function blockHashForRound(uint256 _round) view returns (bytes32)
function initializeRound() nonpayable
event NewRound(uint256 indexed round, bytes32 blockHash)
""")

MINTER = parse("""
function currentMintableTokens() view returns (uint256)
function currentMintedTokens() view returns (uint256)
function inflation() view returns (uint256)
""")

LIVEPEER_TOKEN = parse("""
function balanceOf(address _owner) view returns (uint256)
function approve(address _spender, uint256 _amount) nonpayable returns (bool)
function allowance(address _owner, address _spender) view returns (uint256)
""")

SERVICE_REGISTRY = parse("""
function setServiceURI(string _serviceURI) nonpayable
function getServiceURI(address _addr) view returns (string)
event ServiceURIUpdate(address indexed addr, string serviceURI)
""")

TICKET_BROKER = parse("""
function redeemWinningTicket(Ticket _ticket, bytes _sig, uint256 _recipientRand) nonpayable
function getTicketHash(Ticket _ticket) view returns (bytes32)
function usedTickets(bytes32 _ticketHash) view returns (bool)
function getSenderInfo(address _sender) view returns (Sender sender, ReserveInfo reserve)
function claimableReserve(address _reserveHolder, address _claimant) view returns (uint256)
function claimedReserve(address _reserveHolder, address _claimant) view returns (uint256)
function ticketValidityPeriod() view returns (uint256)
function unlockPeriod() view returns (uint256)
function isUnlockInProgress(address _sender) view returns (bool)
function fundDeposit() payable
function fundReserve() payable
function fundDepositAndReserve(uint256 _depositAmount, uint256 _reserveAmount) payable
function unlock() nonpayable
function cancelUnlock() nonpayable
function withdraw() nonpayable
event WinningTicketRedeemed(address indexed sender, address indexed recipient, uint256 faceValue, uint256 winProb, uint256 senderNonce, uint256 recipientRand, bytes auxData)
event WinningTicketTransfer(address indexed sender, address indexed recipient, uint256 amount)
event DepositFunded(address indexed sender, uint256 amount)
event ReserveFunded(address indexed reserveHolder, uint256 amount)
""")

# A Chainlink-style price feed (AggregatorV3Interface), for prices in a currency (-priceFeedAddr).
PRICE_FEED = parse("""
function decimals() view returns (uint8)
function description() view returns (string)
function latestRoundData() view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
""")

# Controller name -> ABI, for the contracts resolved at start-up.
BY_NAME: dict[str, list[dict[str, Any]]] = {
    "BondingManager": BONDING_MANAGER,
    "RoundsManager": ROUNDS_MANAGER,
    "Minter": MINTER,
    "LivepeerToken": LIVEPEER_TOKEN,
    "ServiceRegistry": SERVICE_REGISTRY,
    "TicketBroker": TICKET_BROKER,
}

# Revert strings lpnode recognises (livepeer/protocol, reference section 1).
ALREADY_REWARDED = "caller has already called reward for the current round"
NOT_ACTIVE = "caller must be an active transcoder"
ROUND_NOT_INITIALIZED = "current round is not initialized"
ROUND_ALREADY_INITIALIZED = "round already initialized"
SYSTEM_PAUSED = "system is paused"
ROUND_LOCKED = "can't update transcoder params, current round is locked"
