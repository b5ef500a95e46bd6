"""Amounts of ETH and LPT as operators type them (decimals allowed), for command-line parsers;
imports no chain library."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

WEI = 10**18  # wei in one ETH, and the LPT token's base units in one LPT


def amount(raw: str, unit: str) -> int:
    """``raw`` units (ETH or LPT) in wei; at least 0. argparse shows the error to the user."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an amount of {unit}") from None
    if value < 0 or not value.is_finite():
        raise argparse.ArgumentTypeError(f"an amount of {unit} of 0 or more")
    return int(value * WEI)


def eth(raw: str) -> int:
    return amount(raw, "ETH")


def lpt(raw: str) -> int:
    return amount(raw, "LPT")
