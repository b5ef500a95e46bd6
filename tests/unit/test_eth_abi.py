"""lpnode's view of the protocol contracts against the reference (shared/reference/onchain.md,
sections 1.3-1.9): every selector and event topic it uses, and the revert strings it acts on."""

from __future__ import annotations

from eth_utils import keccak

from lpnode.eth import abi

# The reference's selector table (section 1.9, and 1.4 for LIP-118), for the functions lpnode calls.
REFERENCE_SELECTORS = {
    "getContract(bytes32)": "e16c7d98", "paused()": "5c975abb", "reward()": "228cb733",
    "rewardWithHint(address,address)": "81871056", "getTranscoder(address)": "5dce9948",
    "transcoderStatus(address)": "8b2f1652", "isActiveTranscoder(address)": "08802374",
    "getTranscoderPoolSize()": "2a4e0d55", "getTranscoderPoolMaxSize()": "5a2a75a9",
    "getFirstTranscoderInPool()": "88a6c749", "getNextTranscoderInPool(address)": "235c9603",
    "transcoderTotalStake(address)": "9ef9df94", "getTotalBonded()": "5c50c356",
    "getTranscoderEarningsPoolForRound(address,uint256)": "24454fc4", "bond(uint256,address)": "b78d27dc",
    "transcoder(uint256,uint256)": "43d3461a", "currentRound()": "8a19c8bc",
    "currentRoundInitialized()": "219bc76c", "currentRoundLocked()": "6841f253",
    "currentRoundStartBlock()": "8fa148f2", "roundLength()": "8b649b94", "lastInitializedRound()": "8807f36e",
    "blockNum()": "8ae63d6d", "blockHash(uint256)": "85df51fd", "blockHashForRound(uint256)": "3aa4add4",
    "initializeRound()": "d4807fb2", "setServiceURI(string)": "5f11301b", "getServiceURI(address)": "214c2a4b",
    "transcoderToRewardCaller(address)": "47621410", "setRewardCaller(address)": "0103e60e",
    "rewardForTranscoder(address)": "1a8c41f8", "rewardForTranscoderWithHint(address,address,address)": "b556966a",
    # TicketBroker (section 1.6): the Ticket struct is the tuple of its fields' types.
    "redeemWinningTicket((address,address,uint256,uint256,uint256,bytes32,bytes),bytes,uint256)": "ec8b3cb6",
    "getTicketHash((address,address,uint256,uint256,uint256,bytes32,bytes))": "b03fa864",
    "usedTickets(bytes32)": "59a515ba", "getSenderInfo(address)": "e1a589da",
    "claimableReserve(address,address)": "81779f38", "claimedReserve(address,address)": "4ac826da",
    "ticketValidityPeriod()": "856a2cf8", "unlockPeriod()": "20d3a0b4", "isUnlockInProgress(address)": "121cdcc2",
    "fundDeposit()": "6caa736b", "fundReserve()": "6f9c3c8f", "fundDepositAndReserve(uint256,uint256)": "511f4073",
    "unlock()": "a69df4b5", "cancelUnlock()": "c2c4c2c8", "withdraw()": "3ccfd60b",
}

# Event signatures as the reference gives them (sections 1.3, 1.4, 1.5, 1.7).
REFERENCE_EVENTS = {
    "Reward(address,uint256)", "TranscoderUpdate(address,uint256,uint256)",
    "TranscoderActivated(address,uint256)", "TranscoderDeactivated(address,uint256)",
    "Bond(address,address,address,uint256,uint256)", "RewardCallerSet(address,address)",
    "NewRound(uint256,bytes32)", "ServiceURIUpdate(address,string)",
    "WinningTicketRedeemed(address,address,uint256,uint256,uint256,uint256,bytes)",
    "WinningTicketTransfer(address,address,uint256)", "DepositFunded(address,uint256)",
    "ReserveFunded(address,uint256)",
}

ALL = [*abi.CONTROLLER, *(item for items in abi.BY_NAME.values() for item in items)]


def test_every_function_lpnode_calls_has_the_reference_selector() -> None:
    ours = {abi.signature(i): abi.selector(i) for i in ALL if i["type"] == "function"}
    in_reference = {sig: sel for sig, sel in ours.items() if sig in REFERENCE_SELECTORS}
    assert in_reference == {sig: REFERENCE_SELECTORS[sig] for sig in in_reference}
    # Not in the reference's table: the ERC-20 and Minter views, standard or read-only.
    assert set(ours) - set(REFERENCE_SELECTORS) == {
        "balanceOf(address)", "approve(address,uint256)", "allowance(address,address)",
        "currentMintableTokens()", "currentMintedTokens()", "inflation()", "getDelegator(address)"}


def test_every_event_lpnode_reads_has_the_reference_signature() -> None:
    events = {abi.signature(i): abi.topic(i) for i in ALL if i["type"] == "event"}
    assert set(events) == REFERENCE_EVENTS
    assert events["NewRound(uint256,bytes32)"] == "0x" + keccak(text="NewRound(uint256,bytes32)").hex()


def test_get_transcoder_returns_the_ten_fields_in_order() -> None:
    item = next(i for i in abi.BONDING_MANAGER if i["name"] == "getTranscoder")
    assert [o["name"] for o in item["outputs"]] == [
        "lastRewardRound", "rewardCut", "feeShare", "lastActiveStakeUpdateRound", "activationRound",
        "deactivationRound", "activeCumulativeRewards", "cumulativeRewards", "cumulativeFees", "lastFeeRound"]


def test_revert_strings_lpnode_acts_on_are_the_protocols() -> None:
    assert abi.ALREADY_REWARDED == "caller has already called reward for the current round"
    assert abi.NOT_ACTIVE == "caller must be an active transcoder"
    assert abi.ROUND_NOT_INITIALIZED == "current round is not initialized"
    assert abi.ROUND_ALREADY_INITIALIZED == "round already initialized"
    assert abi.SYSTEM_PAUSED == "system is paused"


def test_get_sender_info_returns_the_sender_and_reserve_structs() -> None:
    item = next(i for i in abi.TICKET_BROKER if i["name"] == "getSenderInfo")
    assert [(o["name"], [c["name"] for c in o["components"]]) for o in item["outputs"]] == [
        ("sender", ["deposit", "withdrawRound"]), ("reserve", ["fundsRemaining", "claimedInCurrentRound"])]
