"""What each gateway has paid for and not yet used, per (sender, session) (go-livepeer's
core/accounting.go): tickets credit their expected value, transcoded pixels are debited at the
session's price, and a balance idle for 10 minutes is forgotten."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

IDLE_TTL_S = 600.0

Key = tuple[bytes, str]  # (sender address, session / manifest id)


@dataclass
class _Entry:
    balance: Fraction
    touched: float
    price: Fraction | None = None  # wei per pixel, fixed by the session's first payment


class Balances:
    def __init__(self, ttl_s: float = IDLE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[Key, _Entry] = {}

    def credit(self, key: Key, amount: Fraction, now: float) -> Fraction:
        e = self._entries.setdefault(key, _Entry(Fraction(0), now))
        e.balance += amount
        e.touched = now
        return e.balance

    def debit(self, key: Key, amount: Fraction, now: float) -> Fraction:
        e = self._entries.setdefault(key, _Entry(Fraction(0), now))
        e.balance -= amount
        e.touched = now
        return e.balance

    def balance(self, key: Key) -> Fraction:
        e = self._entries.get(key)
        return e.balance if e else Fraction(0)

    def sufficient(self, key: Key, ticket_ev: Fraction) -> bool:
        """Enough to start a segment: at least one ticket's EV (go-livepeer's SufficientBalance)."""
        return self.balance(key) >= ticket_ev

    def price(self, key: Key) -> Fraction | None:
        """The session's fixed price, if a payment has fixed one."""
        e = self._entries.get(key)
        return e.price if e else None

    def fix_price(self, key: Key, price: Fraction, now: float) -> Fraction:
        """The session's price: the first one given sticks (go-livepeer's setFixedPricePerSession),
        so a price change, or a gas spike moving an automatic price, never reprices a running
        session."""
        e = self._entries.setdefault(key, _Entry(Fraction(0), now))
        if e.price is None:
            e.price = price
        e.touched = now
        return e.price

    def expire(self, now: float) -> int:
        """Forget balances idle for longer than the TTL; returns how many."""
        old = [k for k, e in self._entries.items() if now - e.touched > self.ttl_s]
        for k in old:
            del self._entries[k]
        return len(old)
