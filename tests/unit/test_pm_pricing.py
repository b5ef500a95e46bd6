"""lpnode.pm.pricing: prices as go-livepeer's flags give them (wei, ETH, a currency through the
price feed, per gateway), go-livepeer's automatic redemption overhead, and the ceiling it lacks
(go-livepeer #3744)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from lpnode.pm.pricing import INT64_MAX, PriceSpec, PriceUnavailable, Pricing, parse_gateway_prices, wire_price

USD = Fraction(10**18, 3000)  # wei per USD at 3000 USD/ETH


def test_prices_in_wei_eth_and_a_currency() -> None:
    assert PriceSpec.parse("1000").wei_per_pixel() == 1000
    assert PriceSpec.parse("1000wei", 4).wei_per_pixel() == 250
    assert PriceSpec.parse("2.5", 2).wei_per_pixel() == Fraction(5, 4)
    assert PriceSpec.parse("0.000000001ETH").wei_per_pixel() == 10**9
    usd = PriceSpec.parse("0.0000003USD", 3)
    assert usd.needs_feed and usd.currency == "usd"
    assert usd.wei_per_pixel(USD) == Fraction(3, 10**7) * USD / 3
    with pytest.raises(PriceUnavailable, match="USD"):
        usd.wei_per_pixel(None)
    for bad in ("-1", "USD", "1.USD", "", "1 USD"):
        with pytest.raises(ValueError, match="not a price"):
            PriceSpec.parse(bad)


def test_auto_adjust_adds_the_overhead_to_three_decimals_and_stops_at_the_ceiling() -> None:
    pricing = Pricing(PriceSpec(Fraction(1000)), auto_adjust=True, ceiling_percent=10)
    assert pricing.price(None, tx_cost_multiplier=Fraction(100)) == 1010  # go-livepeer: x (1 + 1/100)
    assert pricing.price(None, tx_cost_multiplier=Fraction(30)) == Fraction(1033333, 1000)  # truncated
    # A gas spike: the face value is capped, the multiplier falls to 2 (go-livepeer: +50%).
    assert pricing.price(None, tx_cost_multiplier=Fraction(2)) == 1100
    assert pricing.price(None, tx_cost_multiplier=None) == 1000  # nothing known: the base
    assert Pricing(PriceSpec(Fraction(1000)), auto_adjust=False).price(None, tx_cost_multiplier=Fraction(2)) == 1000
    # A price below a thousandth of a wei per pixel is not rounded to free.
    tiny = Pricing(PriceSpec(Fraction(1), 10**6), auto_adjust=True)
    assert tiny.price(None, tx_cost_multiplier=Fraction(100)) == Fraction(1, 10**6)


def test_gateway_prices_in_go_livepeers_json_inline_or_in_a_file(tmp_path: Path) -> None:
    a, b = "0x" + "ab" * 20, "0x" + "CD" * 20
    text = (f'{{"gateways": [{{"ethaddress": "{a}", "priceperunit": 1000, "pixelsperunit": 3}},'
            f' {{"ethaddress": "{b}", "priceperunit": 0.02, "currency": "USD"}}]}}')
    prices = parse_gateway_prices(text)
    assert prices[bytes.fromhex("ab" * 20)] == PriceSpec(Fraction(1000), 3)
    assert prices[bytes.fromhex("cd" * 20)] == PriceSpec(Fraction(1, 50), 1, "usd")
    file = tmp_path / "prices.json"
    file.write_text(text.replace("gateways", "broadcasters"))
    assert parse_gateway_prices(str(file)) == prices
    pricing = Pricing(PriceSpec(Fraction(7)), prices)
    assert pricing.needs_feed
    assert pricing.price(bytes.fromhex("ab" * 20)) == Fraction(1000, 3)
    assert pricing.price(b"\x01" * 20) == 7
    for bad, why in ((f'{{"gateways": [{{"ethaddress": "{a}", "priceperunit": "1000"}}]}}', "JSON numbers"),
                     ('{"gateways": [{"ethaddress": "0x12", "priceperunit": 1}]}', "not an Ethereum address"),
                     ('{"prices": []}', '{"gateways"'), ("{not json", "not valid JSON"),
                     (str(tmp_path / "missing.json"), "neither JSON nor a readable file")):
        with pytest.raises(ValueError, match=why):
            parse_gateway_prices(bad)


def test_a_price_goes_on_the_wire_exactly_when_it_fits() -> None:
    assert wire_price(Fraction(1000, 3)) == Fraction(1000, 3)
    huge = Fraction(10**30 + 1, 10**20 + 7)
    assert wire_price(huge).denominator <= 1000 and wire_price(huge).numerator <= INT64_MAX
    assert abs(wire_price(huge) - huge) < Fraction(1, 1000)


def test_a_price_change_at_run_time() -> None:
    pricing = Pricing(PriceSpec(Fraction(5)))
    pricing.set(PriceSpec(Fraction(9)))
    pricing.set(PriceSpec(Fraction(2)), gateway=b"\x01" * 20)
    assert (pricing.price(None), pricing.price(b"\x01" * 20)) == (9, 2)
