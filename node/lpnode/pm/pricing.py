"""What an orchestrator charges, in wei per pixel (go-livepeer's core/orchestrator.go priceInfo,
reference 2.10, 2.12): -pricePerUnit per -pixelsPerUnit pixels, in wei, in ETH or in a currency
converted through a Chainlink price feed; a gateway's own price from -pricePerGateway; and
with -autoAdjustPrice the redemption overhead added on top.

go-livepeer lets that overhead grow without bound: when gas spikes, or a gateway's reserve caps
the face value, 1/txCostMultiplier climbs and the price passes the gateways' -maxPricePerUnit,
which then drop the orchestrator mid-stream (go-livepeer #3744). Here the overhead stops at
-autoAdjustPriceCeiling (a percentage of the base price).

Pure values and arithmetic: the node passes in the feed's rate and each gateway's multiplier.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from math import floor
from pathlib import Path

from lpnode.net import lp_rpc_pb2 as pb

_PRICE = re.compile(r"^(\d+(?:\.\d+)?)([A-Za-z][A-Za-z0-9]*)?$")
WEI_PER_ETH = 10**18
INT64_MAX = 2**63 - 1
# go-livepeer's PriceToFixed: automatic prices keep three decimals (of wei per pixel).
FIXED_SCALE = 1000
DEFAULT_CEILING_PERCENT = 10


class PriceUnavailable(Exception):
    """A currency price with no rate read from the price feed yet."""


@dataclass(frozen=True)
class PriceSpec:
    """A price as the operator gives it: ``amount`` per ``pixels_per_unit`` pixels, in wei
    (currency "" or "wei"), in ETH ("eth"), or in the price feed's currency (e.g. "USD")."""

    amount: Fraction
    pixels_per_unit: int = 1
    currency: str = ""

    @classmethod
    def parse(cls, text: str, pixels_per_unit: int = 1) -> PriceSpec:
        match = _PRICE.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a price: a number, optionally followed by a currency "
                             "(1000 is wei; 0.5USD goes through the price feed; 0.000001ETH)")
        if pixels_per_unit <= 0:
            raise ValueError("pixels per unit must be more than 0")
        currency = (match.group(2) or "").lower()
        return cls(Fraction(match.group(1)), pixels_per_unit, "" if currency == "wei" else currency)

    @property
    def needs_feed(self) -> bool:
        return self.currency not in ("", "eth")

    def wei_per_pixel(self, wei_per_currency_unit: Fraction | None = None) -> Fraction:
        if self.currency == "":
            per_unit = self.amount
        elif self.currency == "eth":
            per_unit = self.amount * WEI_PER_ETH
        elif wei_per_currency_unit is None:
            raise PriceUnavailable(f"a price in {self.currency.upper()} needs the price feed's rate, "
                                   "not read yet")
        else:
            per_unit = self.amount * wei_per_currency_unit
        return per_unit / self.pixels_per_unit

    def __str__(self) -> str:
        amount = str(float(self.amount)) if self.amount.denominator != 1 else str(self.amount.numerator)
        unit = self.currency.upper() if self.currency else " wei"
        return f"{amount}{unit} per {self.pixels_per_unit} pixels"


def parse_gateway_prices(value: str) -> dict[bytes, PriceSpec]:
    """-pricePerGateway: go-livepeer's JSON, given inline or as the path of a file holding it:
    {"gateways": [{"ethaddress": "0x...", "priceperunit": 1000, "pixelsperunit": 1,
    "currency": "USD"}]} (the older key "broadcasters" too). Numbers must be JSON numbers."""
    text = value if value.lstrip().startswith("{") else _read(value)
    try:
        data = json.loads(text, parse_float=Fraction, parse_int=Fraction)
    except ValueError as exc:
        raise ValueError(f"-pricePerGateway is not valid JSON: {exc}") from None
    entries = data.get("gateways", data.get("broadcasters")) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError('-pricePerGateway needs {"gateways": [{"ethaddress": ..., "priceperunit": ..., '
                         '"pixelsperunit": ...}]}')
    prices: dict[bytes, PriceSpec] = {}
    for n, entry in enumerate(entries, 1):
        where = f"-pricePerGateway entry {n}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not an object")
        address = str(entry.get("ethaddress", "")).lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{40}", address):
            raise ValueError(f"{where}: ethaddress {entry.get('ethaddress')!r} is not an Ethereum address")
        price, pixels = entry.get("priceperunit"), entry.get("pixelsperunit", Fraction(1))
        if not isinstance(price, Fraction) or not isinstance(pixels, Fraction):
            raise ValueError(f"{where}: priceperunit and pixelsperunit must be JSON numbers, not strings")
        if price < 0 or pixels <= 0 or pixels.denominator != 1:
            raise ValueError(f"{where}: priceperunit must be 0 or more and pixelsperunit a whole number above 0")
        currency = str(entry.get("currency", "")).lower()
        prices[bytes.fromhex(address)] = PriceSpec(price, int(pixels), "" if currency == "wei" else currency)
    return prices


def _read(path: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as exc:
        raise ValueError(f"-pricePerGateway: neither JSON nor a readable file ({exc.strerror}: {path})") from None


def wire_price(price: Fraction) -> Fraction:
    """``price`` as PriceInfo can carry it (int64 numerator and denominator), exact when it fits."""
    if price.numerator <= INT64_MAX and price.denominator <= INT64_MAX:
        return price
    return price.limit_denominator(FIXED_SCALE)


def price_info(price: Fraction) -> pb.PriceInfo:
    """go-livepeer's advertised form: the reduced rational's numerator and denominator."""
    return pb.PriceInfo(pricePerUnit=price.numerator, pixelsPerUnit=price.denominator)


def price_of(info: pb.PriceInfo) -> Fraction | None:
    """Wei per pixel, or None when the PriceInfo carries none (pixelsPerUnit 0)."""
    if info.pixelsPerUnit <= 0 or info.pricePerUnit < 0:
        return None
    return Fraction(info.pricePerUnit, info.pixelsPerUnit)


@dataclass
class Pricing:
    default: PriceSpec
    gateways: dict[bytes, PriceSpec] = field(default_factory=dict)
    auto_adjust: bool = False
    ceiling_percent: int = DEFAULT_CEILING_PERCENT

    @property
    def needs_feed(self) -> bool:
        return self.default.needs_feed or any(p.needs_feed for p in self.gateways.values())

    def spec(self, sender: bytes | None) -> PriceSpec:
        return self.gateways.get(sender, self.default) if sender else self.default

    def set(self, spec: PriceSpec, gateway: bytes | None = None) -> None:
        """A price change at run time; streams already paying keep their first price."""
        if gateway is None:
            self.default = spec
        else:
            self.gateways[gateway] = spec

    def price(self, sender: bytes | None, wei_per_currency_unit: Fraction | None = None,
              tx_cost_multiplier: Fraction | None = None) -> Fraction:
        """Wei per pixel for ``sender``: its base price, and with auto-adjust the redemption
        overhead (1 + 1/txCostMultiplier, at most the ceiling), kept to three decimals."""
        base = self.spec(sender).wei_per_pixel(wei_per_currency_unit)
        if not self.auto_adjust or base == 0 or not tx_cost_multiplier:
            return wire_price(base)
        overhead = min(1 + 1 / tx_cost_multiplier, 1 + Fraction(self.ceiling_percent, 100))
        fixed = Fraction(floor(base * overhead * FIXED_SCALE), FIXED_SCALE)
        # Below a thousandth of a wei per pixel three decimals would make it free.
        return wire_price(max(fixed, base))
