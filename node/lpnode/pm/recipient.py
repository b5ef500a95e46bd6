"""The orchestrator's side of tickets (go-livepeer's pm.Recipient, reference 2.1, 2.2, 2.5): the
ticket params it quotes to a gateway, and the checks a payment's tickets go through.

Pure logic over small inputs (the chain's view is passed in as ChainView), so every rule is
unit-tested with real signatures; the node feeds it what it reads from the chain and hands the
winning tickets it returns to the durable queue (lpnode.pm.queue) before it answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction

from lpnode.pm.ticket import MAX_WIN_PROB, RecipientRandKey, Ticket, is_winning, recipient_rand_hash, signer

TX_COST_MULTIPLIER = 100  # faceValue = redemption cost x 100 (go-livepeer's txCostMultiplier)
EV_MULTIPLIER = 100
PARAMS_EXPIRATION_BLOCKS = 40  # ticket params are valid for 40 L1 blocks
AVG_GAS_PRICE = 3 * 10**9  # go-livepeer's hard-coded 3 gwei floor for "is this worth redeeming"
MAX_NONCES_PER_RAND = 600
# Gas of one redeemWinningTicket: go-livepeer's estimates (starter.go redeemGasL1/L2).
REDEEM_GAS_L2 = 1_200_000
REDEEM_GAS_L1 = 350_000


def redeem_gas(network: str) -> int:
    return REDEEM_GAS_L2 if network.startswith("arbitrum-one") else REDEEM_GAS_L1


class PaymentError(Exception):
    """A payment refused, with go-livepeer's message. ``fatal``: the whole payment stops here
    (the segment is refused); otherwise this ticket earns nothing and the rest still count."""

    def __init__(self, message: str, fatal: bool = True) -> None:
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class ChainView:
    """What the recipient needs from the chain, as the node last read it."""

    last_seen_block: int  # the L1 block number rounds count in (RoundsManager.blockNum)
    last_initialized_round: int
    round_block_hash: bytes  # blockHashForRound(last_initialized_round)
    gas_price: int  # wei per gas, for the redemption's cost


@dataclass(frozen=True)
class TicketParams:
    recipient: bytes
    face_value: int
    win_prob: int
    recipient_rand_hash: bytes
    seed: int
    expiration_block: int
    creation_round: int
    creation_round_block_hash: bytes
    price_num: int
    price_den: int

    def ev(self) -> Fraction:
        return Fraction(self.face_value * self.win_prob, MAX_WIN_PROB)

    def ticket(self, sender: bytes, nonce: int = 0) -> Ticket:
        """The ticket ``sender`` signs with ``nonce`` on these params."""
        return Ticket(recipient=self.recipient, sender=sender, face_value=self.face_value, win_prob=self.win_prob,
                      sender_nonce=nonce, recipient_rand_hash=self.recipient_rand_hash,
                      creation_round=self.creation_round, creation_round_block_hash=self.creation_round_block_hash)


@dataclass
class Received:
    """What one payment brought: the EV to credit and the winning tickets to queue."""

    credit: Fraction = Fraction(0)
    winning: list[tuple[Ticket, bytes, int]] = field(default_factory=list)  # (ticket, sig, recipientRand)
    error: PaymentError | None = None  # the first non-fatal error, if any


class Recipient:
    def __init__(self, address: bytes, key: RecipientRandKey, network: str, ticket_ev: int,
                 max_face_value: int = 0, min_gas_price: int = 0, max_nonces: int = MAX_NONCES_PER_RAND,
                 seed: Callable[[], int] = lambda: int.from_bytes(secrets.token_bytes(32), "big")) -> None:
        self.address = address
        self.key = key
        self.redeem_gas = redeem_gas(network)
        self.ticket_ev = ticket_ev
        self.max_face_value = max_face_value
        self.min_gas_price = min_gas_price
        self.max_nonces = max_nonces
        self._seed = seed
        # recipientRand -> (its params' expiration block, the nonces seen)
        self._nonces: dict[int, tuple[int, set[int]]] = {}

    # ------------------------------------------------------------------ quoting

    def tx_cost(self, chain: ChainView) -> int:
        """What redeeming one ticket costs in gas, in wei."""
        return self.redeem_gas * max(chain.gas_price, self.min_gas_price)

    def tx_cost_multiplier(self, chain: ChainView, max_float: int | None) -> Fraction | None:
        """faceValue / txCost for a sender (go-livepeer's TxCostMultiplier); None when no face
        value can be quoted or the gas is free."""
        try:
            face = self.face_value(chain, max_float)
        except PaymentError:
            return None
        cost = self.tx_cost(chain)
        return Fraction(face, cost) if cost > 0 else None

    def face_value(self, chain: ChainView, max_float: int | None) -> int:
        """Reference 2.2: the redemption's cost x 100 (or the EV x 100 when that is more), capped
        by the sender's max float and -maxFaceValue; PaymentError "insufficient sender reserve"
        when what is left cannot carry the EV or pay for its own redemption."""
        tx_cost = self.tx_cost(chain)
        face = tx_cost * TX_COST_MULTIPLIER
        if face < self.ticket_ev:
            face = self.ticket_ev * EV_MULTIPLIER
        if max_float is not None:
            face = min(face, max_float)
        if self.max_face_value:
            face = min(face, self.max_face_value)
        if face < self.ticket_ev or (face < tx_cost and face < self.redeem_gas * AVG_GAS_PRICE):
            raise PaymentError("insufficient sender reserve")
        return face

    def win_prob(self, face_value: int) -> int:
        """EV x ceil((2^256 - 1) / faceValue): each ticket is worth the EV on average."""
        if face_value == 0:
            return 0
        if face_value == self.ticket_ev:
            return MAX_WIN_PROB
        return self.ticket_ev * -(-MAX_WIN_PROB // face_value)

    def ticket_params(self, sender: bytes, chain: ChainView, price_num: int, price_den: int,
                      max_float: int | None = None) -> TicketParams:
        """The params quoted to ``sender`` (GetOrchestrator). A price of 0 asks for no tickets:
        face value and win probability 0."""
        face = self.face_value(chain, max_float) if price_num else 0
        win_prob = self.win_prob(face)
        seed = self._seed()
        expiration = chain.last_seen_block + PARAMS_EXPIRATION_BLOCKS
        aux = Ticket(recipient=self.address, sender=sender, face_value=face, win_prob=win_prob, sender_nonce=0,
                     recipient_rand_hash=b"", creation_round=chain.last_initialized_round,
                     creation_round_block_hash=chain.round_block_hash).aux_data()
        rand = self.key.rand(seed, sender, face, win_prob, expiration, price_num, price_den, aux)
        return TicketParams(recipient=self.address, face_value=face, win_prob=win_prob,
                            recipient_rand_hash=recipient_rand_hash(rand), seed=seed, expiration_block=expiration,
                            creation_round=chain.last_initialized_round,
                            creation_round_block_hash=chain.round_block_hash, price_num=price_num, price_den=price_den)

    # ------------------------------------------------------------------ receiving

    def receive(self, params: TicketParams, sender: bytes, tickets: list[tuple[int, bytes]],
                last_seen_block: int) -> Received:
        """Check a payment's tickets (``(senderNonce, sig)`` each, all on ``params``) in
        go-livepeer's order. Raises PaymentError for a fatal error; a non-fatal one (a bad
        signature, expired params) is returned in ``Received.error``, and no ticket after it
        is credited. Winning tickets are returned whatever else happened."""
        if params.recipient != self.address:
            raise PaymentError("invalid ticket recipient")
        if not any(sender):
            raise PaymentError("invalid ticket sender")
        template = params.ticket(sender)
        rand = self.key.rand(params.seed, sender, params.face_value, params.win_prob, params.expiration_block,
                             params.price_num, params.price_den, template.aux_data())
        if recipient_rand_hash(rand) != params.recipient_rand_hash:
            raise PaymentError("invalid recipientRand for ticket recipientRandHash")
        received = Received()
        for nonce, sig in tickets:
            ticket = replace(template, sender_nonce=nonce)
            problem: PaymentError | None = None
            if signer(ticket.hash(), sig) != sender:
                problem = PaymentError("invalid ticket signature", fatal=False)
            elif is_winning(sig, rand, ticket.win_prob):
                received.winning.append((ticket, sig, rand))
            if problem is None:
                self._check_nonce(rand, params.expiration_block, nonce)
                if params.expiration_block <= last_seen_block:
                    problem = PaymentError("TicketParams expired", fatal=False)
            if problem is not None and received.error is None:
                received.error = problem
            if received.error is None:
                received.credit += ticket.ev()
        return received

    def _check_nonce(self, rand: int, expiration_block: int, nonce: int) -> None:
        seen = self._nonces.setdefault(rand, (expiration_block, set()))[1]
        if nonce in seen:
            raise PaymentError("invalid ticket senderNonce: already seen")
        if len(seen) >= self.max_nonces:
            raise PaymentError("invalid ticket senderNonce: too many values")
        seen.add(nonce)

    def forget_expired(self, last_seen_block: int) -> None:
        """Drop the nonces of params that have expired: their tickets are refused as expired."""
        for rand in [r for r, (expiry, _) in self._nonces.items() if expiry <= last_seen_block]:
            del self._nonces[rand]
