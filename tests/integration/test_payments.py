"""Getting paid on the local chain, with real lpnode processes: an on-chain orchestrator quotes
ticket params, `lpnode test-stream` pays each segment with tickets signed by its keystore, the
orchestrator queues every winning ticket on disk before it answers and redeems each on chain
exactly once after its params expire, a kill -9 loses none, and bad payments are refused with
go-livepeer's errors and earn nothing."""

from __future__ import annotations

import asyncio
import math
import re
import time
import signal
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import grpc
import pytest
from eth_account import Account

from lpnode.eth import abi
from lpnode.gateway.client import GatewayClient, segment_request
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.pm.sender import PaymentSender
from lpnode.pm.ticket import sign
from lpnode.pm.wire import decode_payment, encode_payment, params_from_net, price_of
from lpnode.transcode.profiles import parse_profiles
from lpnode.transcode.testsrc import cut_segments, make_source
from tests.support.fleet import Fleet, Proc
from tests.support.localchain import LocalChain

pytestmark = pytest.mark.integration

PROFILE = "P144p30fps16x9"
EV = 10**15
# A 2 s segment of P144p30fps16x9 is about 2.2 million pixels: at this price it costs about
# one ticket's EV, so the stream sends about a ticket a segment.
PRICE = 450_000_000
PARAMS_EXPIRATION_BLOCKS = 40


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LocalChain]:
    # Long rounds: the test mines 40+ blocks for the params to expire, and tickets must stay
    # valid (two rounds) until they are redeemed.
    c = LocalChain(tmp_path, round_length=500)
    yield c
    c.close()


def paid_orchestrator(fleet: Fleet, chain: LocalChain, max_face_value: int, *extra: str, name: str = "orchestrator",
                      listen: str = "") -> Proc:
    return fleet.orchestrator("-transcoder", "-maxSessions", "4", *chain.flags(1), "-reward=false",
                              "-blockPollingInterval", "1", "-pricePerUnit", str(PRICE), "-autoAdjustPrice=false",
                              "-ticketEV", str(EV), "-maxFaceValue", str(max_face_value), *extra,
                              name=name, listen=listen)


def registered(chain: LocalChain) -> str:
    """Account 1 registered and active in an initialized round."""
    address = chain.register(1)
    chain.next_round()
    chain.initialize_round()
    return address


def gateway_flags(chain: LocalChain, fund: bool = True) -> list[str]:
    key_dir, password = chain.keystore(2)
    flags = ["-ethKeystorePath", str(key_dir), "-ethPassword", str(password)]
    if fund:
        flags += ["-deposit", "1", "-reserve", "1", "-network", "lpfleet-local", "-ethUrl", chain.rpc_url,
                  "-ethController", chain.info["controller"], "-dataDir", str(chain.tmp / "gateway-data")]
    return flags


def metric(proc: Proc, name: str, label: str = "") -> float:
    """The sum of ``name``'s series whose labels contain ``label``."""
    found = re.findall(rf"^{re.escape(name)}(?:{{([^}}]*)}})? (\S+)$", proc.metrics(), re.M)
    return sum(float(value) for labels, value in found if label in labels)


def redeemed_events(chain: LocalChain, recipient: str) -> list:
    broker = chain.w3.eth.contract(address=chain.info["contracts"]["TicketBroker"], abi=abi.TICKET_BROKER)
    return list(broker.events.WinningTicketRedeemed().get_logs(from_block=0,
                                                                argument_filters={"recipient": recipient}))


def expire_params_and_wait_redeemed(chain: LocalChain, orch: Proc, recipient: str, winners: int) -> list:
    chain.mine(PARAMS_EXPIRATION_BLOCKS + 1)
    chain.wait(lambda: len(redeemed_events(chain, recipient)) >= winners and not orch.status()["chain"][
        "payments"]["tickets"].get("pending"), f"{winners} redemptions", timeout=90, log=orch.log)
    return redeemed_events(chain, recipient)


def test_thirty_paid_segments_and_every_winning_ticket_redeemed_once(fleet: Fleet, chain: LocalChain) -> None:
    recipient = registered(chain)
    # Face value twice the EV: about every other ticket wins.
    orch = paid_orchestrator(fleet, chain, max_face_value=2 * EV)
    code, summary, out = fleet.test_stream("-segments", "30", "-profiles", PROFILE, "-resolution", "320x180",
                                           "-quiet", *gateway_flags(chain))
    assert code == 0 and summary["succeeded"] == 30 and summary["retries"] == 0, out + orch.log()[-3000:]
    paid = summary["payments"]
    assert paid["tickets"] >= 25, summary
    assert metric(orch, "livepeer_tickets_recv_total") == paid["tickets"]
    assert paid["fees_charged_wei"] > 0
    winners = int(metric(orch, "livepeer_winning_tickets_recv_total"))
    assert 0 < winners < paid["tickets"], summary  # a half chance each: not all, not none
    # Nothing is redeemed while the params can still be used.
    assert redeemed_events(chain, recipient) == []
    events = expire_params_and_wait_redeemed(chain, orch, recipient, winners)
    assert len(events) == winners
    assert len({(e["args"]["senderNonce"], e["args"]["recipientRand"]) for e in events}) == winners
    assert all(e["args"]["sender"] == chain.account(2)["address"] for e in events)
    # Exactly one transaction per ticket: none reverted, none sent twice.
    redeem_txs = chain.transactions_from(recipient, chain.info["contracts"]["TicketBroker"])
    assert len(redeem_txs) == winners
    status = orch.status()["chain"]["payments"]
    assert status["tickets"] == {"redeemed": winners}, status
    assert metric(orch, "livepeer_value_redeemed_total") == sum(2 * EV for _ in events)
    assert metric(orch, "lpfleet_ticket_queue_depth") == 0
    # Its endpoint answers and its chain moves: LpnodeChainRpcDown and LpnodeChainStale stay quiet.
    assert metric(orch, "lpfleet_rpc_up") == 1
    assert metric(orch, "lpfleet_chain_block") >= chain.w3.eth.block_number - 5
    assert time.time() - metric(orch, "lpfleet_chain_last_block_timestamp_seconds") < 60


def test_a_winning_ticket_survives_kill_9_and_is_redeemed_after_the_restart(fleet: Fleet, chain: LocalChain) -> None:
    recipient = registered(chain)
    # Face value equal to the EV: every ticket wins.
    orch = paid_orchestrator(fleet, chain, max_face_value=EV)
    code, summary, out = fleet.test_stream("-segments", "1", "-profiles", PROFILE, "-resolution", "320x180",
                                           *gateway_flags(chain))
    assert code == 0 and summary["payments"]["tickets"] == 1, out
    assert metric(orch, "livepeer_winning_tickets_recv_total") == 1
    # Killed right after the answer: the ticket must already be on disk.
    orch.popen.send_signal(signal.SIGKILL)
    orch.popen.wait()
    chain.mine(PARAMS_EXPIRATION_BLOCKS + 1)
    restarted = paid_orchestrator(fleet, chain, max_face_value=EV, name="orchestrator", listen=fleet.orch_addr)
    restarted.wait_log("1 winning tickets waiting for redemption")
    events = expire_params_and_wait_redeemed(chain, restarted, recipient, 1)
    assert len(events) == 1 and events[0]["args"]["faceValue"] == EV


class Gateway:
    """Hand-made payments against the running orchestrator, one problem at a time."""

    def __init__(self, orch_addr: str, key: str) -> None:
        self.orch_addr = orch_addr
        self.payer = PaymentSender(bytes.fromhex(key[2:]))
        raw = make_source(2.0, 320, 180, 30)
        self.data = cut_segments(raw, 2.0)[0]
        self.profiles = parse_profiles(PROFILE)
        self.seq = 0

    async def info(self) -> pb.OrchestratorInfo:
        async with GatewayClient(self.orch_addr, payer=self.payer) as client:
            return await client.get_orchestrator()

    async def send(self, info: pb.OrchestratorInfo, edit: object = None, manifest: str = "refusals") -> str:
        """POST one segment; ``edit`` may change its Payment before it goes (or be the header
        itself). Returns "ok" or the refusal's text."""
        url, headers = segment_request(info, manifest, self.seq, self.data, self.profiles, 2000, self.payer)
        self.seq += 1
        if isinstance(edit, str):
            headers["Livepeer-Payment"] = edit
        elif callable(edit):
            payment = decode_payment(headers["Livepeer-Payment"])
            edit(payment)
            headers["Livepeer-Payment"] = encode_payment(payment)
        async with GatewayClient(self.orch_addr) as client:
            resp = await client._http.post(url, content=self.data, headers=headers)
        if resp.status_code == 200 and pb.TranscodeResult.FromString(resp.content).WhichOneof("result") == "data":
            return "ok"
        return f"{resp.status_code}: {resp.content.decode(errors='replace').strip()}"


def _resign(payment: pb.Payment, key: str, **changes: object) -> None:
    """Sign the payment's tickets again after ``changes`` to their params (a sender that
    signs what it sends, so only the change itself can be refused)."""
    price = price_of(payment.expected_price)
    assert price is not None
    for field, value in changes.items():
        setattr(payment.ticket_params, field, value)
    p = params_from_net(payment.ticket_params, price, payment.expiration_params)
    for t in payment.ticket_sender_params:
        t.sig = sign(p.ticket(bytes(payment.sender), t.sender_nonce).hash(), key)


def test_bad_payments_are_refused_with_go_livepeers_errors_and_earn_nothing(fleet: Fleet, chain: LocalChain) -> None:
    registered(chain)
    orch = paid_orchestrator(fleet, chain, max_face_value=100 * EV)
    gateway_key = chain.account(2)["private_key"]
    fleet.test_stream("-segments", "1", "-profiles", PROFILE, "-resolution", "320x180", *gateway_flags(chain))
    gw = Gateway(fleet.orch_addr, gateway_key)
    stranger = Account.create().key

    async def scenario() -> dict[str, str]:
        seen: dict[str, str] = {}
        info = await gw.info()
        seen["no payment"] = await gw.send(info, lambda p: p.ClearField("ticket_sender_params"), manifest="empty")
        seen["bad signature"] = await gw.send(info, lambda p: [setattr(t, "sig", sign(b"\1" * 32, stranger))
                                                               for t in p.ticket_sender_params], manifest="badsig")
        replayed: list[pb.Payment] = []
        seen["first use"] = await gw.send(info, lambda p: replayed.append(pb.Payment.FromString(
            p.SerializeToString())), manifest="replay")
        seen["replayed nonce"] = await gw.send(info, lambda p: p.CopyFrom(replayed[0]), manifest="replay2")
        seen["wrong recipient"] = await gw.send(
            info, lambda p: _resign(p, gateway_key, recipient=b"\2" * 20), manifest="recipient")
        seen["segment signed by another"] = await gw.send(
            info, lambda p: setattr(p, "sender", bytes.fromhex(Account.from_key(stranger).address[2:])),
            manifest="segsig")
        seen["malformed header"] = await gw.send(info, "not base64!", manifest="junk")
        return seen

    seen = asyncio.run(scenario())
    assert seen["no payment"] == "400: Insufficient balance"
    assert seen["bad signature"] == "400: invalid ticket signature"
    assert seen["first use"] == "ok"
    assert seen["replayed nonce"] == "400: invalid ticket senderNonce: already seen"
    assert seen["wrong recipient"] == "400: invalid ticket recipient"
    assert seen["segment signed by another"] == "403: segment sig check failed"
    assert seen["malformed header"].startswith("402: malformed Livepeer-Payment header"), seen
    # Expired params: the orchestrator sees the chain move past them.
    chain.mine(PARAMS_EXPIRATION_BLOCKS + 1)
    chain.wait(lambda: orch.status()["chain"]["payments"]["lastSeenBlock"] >= chain.w3.eth.block_number,
               "the orchestrator to see the new block")

    async def expired() -> tuple[str, str]:
        old = await gw.info()
        chain.mine(PARAMS_EXPIRATION_BLOCKS + 1)
        target = chain.w3.eth.block_number
        await asyncio.to_thread(chain.wait, lambda: orch.status()["chain"]["payments"]["lastSeenBlock"] >= target,
                                "the orchestrator to see the new block")
        return await gw.send(old, manifest="expired"), await gw.send(await gw.info(), manifest="fresh")

    late, fresh = asyncio.run(expired())
    assert late == "400: TicketParams expired"
    assert fresh == "ok"
    # None of the refused payments was credited: each of those streams still has nothing.
    for manifest in ("badsig", "recipient", "expired"):
        assert asyncio.run(gw.send(asyncio.run(gw.info()), lambda p: p.ClearField("ticket_sender_params"),
                                   manifest=manifest)) == "400: Insufficient balance", manifest
    log = orch.log()
    assert "refused segment from 127.0.0.1" in log and "invalid ticket signature" in log
    assert metric(orch, "livepeer_payment_recv_errors_total", 'error_code="insufficient_balance"') >= 4


def fund(chain: LocalChain, index: int, deposit: int, reserve: int) -> str:
    address = chain.account(index)["address"]
    broker = chain.w3.eth.contract(address=chain.info["contracts"]["TicketBroker"], abi=abi.TICKET_BROKER)
    tx = broker.functions.fundDepositAndReserve(deposit, reserve).transact({"from": address,
                                                                           "value": deposit + reserve})
    assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    return address


def test_prices_per_gateway_in_a_currency_changed_at_run_time_and_the_auto_adjust_ceiling(
        fleet: Fleet, chain: LocalChain) -> None:
    registered(chain)
    fund(chain, 2, 10**18, 2 * 10**15)  # a small reserve: it caps the face value near the redemption cost
    other = fund(chain, 3, 10**18, 10**18)
    feed = chain.w3.eth.contract(address=chain.info["contracts"]["PriceFeed"], abi=abi.PRICE_FEED + [
        {"type": "function", "name": "updateAnswer", "stateMutability": "nonpayable",
         "inputs": [{"name": "_answer", "type": "int256"}], "outputs": []}])
    gateway_prices = f'{{"gateways": [{{"ethaddress": "{other}", "priceperunit": 500, "pixelsperunit": 1}}]}}'
    orch = fleet.orchestrator("-transcoder", *chain.flags(1), "-reward=false", "-blockPollingInterval", "1",
                              "-pricePerUnit", "0.0000001USD", "-priceFeedAddr", feed.address,
                              "-pricePerGateway", gateway_prices, "-ticketEV", str(EV),
                              "-adminTokenFile", str(fleet.admin_token()))
    main = Gateway(fleet.orch_addr, chain.account(2)["private_key"])
    special = Gateway(fleet.orch_addr, chain.account(3)["private_key"])

    def price(gw: Gateway) -> object:
        info = asyncio.run(gw.info())
        return price_of(info.price_info)

    def quoted_when(gw: Gateway, want: object) -> None:
        chain.wait(lambda: price(gw) == want, f"the price {want}", log=orch.log)

    # 1e-7 USD a pixel at 3000 USD/ETH; the redemption overhead (about 1/3 here) held at +10%.
    base = Fraction(1, 10**7) * Fraction(10**18, 3000)
    quoted_when(main, Fraction(math.floor(base * Fraction(11, 10) * 1000), 1000))
    # The gateway with its own price, funded well: overhead 1/100 (face value = 100 x the cost).
    quoted_when(special, Fraction(math.floor(500 * Fraction(101, 100) * 1000), 1000))
    # ETH doubles in USD: the USD price halves in wei; the gateway's own price in wei stays.
    feed.functions.updateAnswer(6000 * 10**8).transact({"from": chain.account(0)["address"]})
    quoted_when(main, Fraction(math.floor(base / 2 * Fraction(11, 10) * 1000), 1000))
    assert price(special) == Fraction(math.floor(500 * Fraction(101, 100) * 1000), 1000)
    # A new price at run time, through the admin API.
    changed = orch.admin("setPrice?pricePerUnit=1000&pixelsPerUnit=2", fleet.admin_token())
    assert changed["price"] == "1000 wei per 2 pixels", changed
    quoted_when(main, Fraction(math.floor(Fraction(500) * Fraction(11, 10) * 1000), 1000))
    assert orch.status()["price"] == "1000 wei per 2 pixels"
    assert "price changed from 1e-07USD per 1 pixels to 1000 wei per 2 pixels" in orch.log()


def start_redeemer(fleet: Fleet, chain: LocalChain, token: Path, listen: str = "127.0.0.1:0") -> tuple[Proc, str]:
    """Account 3 redeeming account 1's tickets (account 3 pays the gas)."""
    proc = fleet.start("redeemer", "-redeemer", *chain.flags(3), "-ethOrchAddr", chain.account(1)["address"],
                       "-httpAddr", listen, "-redeemerTokenFile", str(token), "-blockPollingInterval", "1", "-monitor")
    return proc, proc.logged(r"listening on (\S+),").group(1)


def test_a_separate_redeemer_down_for_blocks_still_gets_and_redeems_every_ticket(
        fleet: Fleet, chain: LocalChain, tmp_path: Path) -> None:
    recipient = registered(chain)
    token = tmp_path / "redeemer-token"
    token.write_text("redeemer-token-7d1c\n")
    token.chmod(0o600)
    redeemer, addr = start_redeemer(fleet, chain, token)
    redeemer.stop()  # down from the start: the orchestrator must keep what it wins
    orch = paid_orchestrator(fleet, chain, EV, "-redeemerAddr", addr, "-redeemerTokenFile", str(token))
    code, summary, out = fleet.test_stream("-segments", "8", "-profiles", PROFILE, "-resolution", "320x180",
                                           "-quiet", *gateway_flags(chain))
    assert code == 0 and summary["succeeded"] == 8, out + orch.log()[-3000:]
    winners = int(metric(orch, "livepeer_winning_tickets_recv_total"))
    assert winners == summary["payments"]["tickets"] >= 8
    assert orch.status()["chain"]["payments"]["tickets"] == {"pending": winners}
    chain.mine(20)
    redeemer, _ = start_redeemer(fleet, chain, token, listen=addr)
    chain.wait(lambda: orch.status()["chain"]["payments"]["tickets"] == {"forwarded": winners},
               "every ticket handed to the redeemer", log=orch.log)
    chain.mine(PARAMS_EXPIRATION_BLOCKS + 1)
    chain.wait(lambda: len(redeemed_events(chain, recipient)) >= winners and redeemer.status()["tickets"] == {
        "redeemed": winners}, f"{winners} redemptions", timeout=90, log=redeemer.log)
    assert len(redeemed_events(chain, recipient)) == winners
    # Redeemed by the redeemer's account, one transaction each; the orchestrator's account sent none.
    broker = chain.info["contracts"]["TicketBroker"]
    assert len(chain.transactions_from(chain.account(3)["address"], broker)) == winners
    assert chain.transactions_from(recipient, broker) == []

    # Without the token a caller gets nothing in.
    from lpnode.pm.queue import TicketQueue
    from lpnode.pm.remote import Forwarder
    stranger = Forwarder(addr, TicketQueue(tmp_path / "stranger.sqlite3"), token="not-the-token")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        asyncio.run(stranger.max_float(bytes.fromhex(chain.account(2)["address"][2:])))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    redeemer.wait_log("refused max_float from 127.0.0.1: bad token")
