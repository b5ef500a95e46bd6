"""lpnode.pm.ticket without a chain: signatures the contract would refuse are refused here too,
the win check, EV, auxData, and a recipientRand key that survives a restart."""

from __future__ import annotations

import os
import stat
from fractions import Fraction
from pathlib import Path

import pytest
from eth_account import Account

from lpnode.pm.ticket import (
    MAX_WIN_PROB,
    SECP256K1_N,
    RecipientRandKey,
    Ticket,
    is_winning,
    minimal_bytes,
    recipient_rand_hash,
    sign,
    signer,
)

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil's test account 1
ADDRESS = bytes.fromhex(Account.from_key(KEY).address[2:])


def ticket(**changes) -> Ticket:
    fields = dict(recipient=b"\x11" * 20, sender=ADDRESS, face_value=10**15, win_prob=MAX_WIN_PROB // 2,
                  sender_nonce=1, recipient_rand_hash=recipient_rand_hash(7), creation_round=5,
                  creation_round_block_hash=b"\x22" * 32)
    fields.update(changes)
    return Ticket(**fields)


def test_a_signature_recovers_its_sender() -> None:
    t = ticket()
    sig = sign(t.hash(), KEY)
    assert len(sig) == 65 and sig[64] in (27, 28)
    assert signer(t.hash(), sig) == ADDRESS
    assert signer(ticket(sender_nonce=2).hash(), sig) != ADDRESS


def test_signatures_the_contract_refuses_are_refused() -> None:
    h = ticket().hash()
    sig = sign(h, KEY)
    s_value, v = int.from_bytes(sig[32:64], "big"), sig[64]
    high_s = sig[:32] + (SECP256K1_N - s_value).to_bytes(32, "big") + bytes([55 - v])
    assert signer(h, high_s) is None                # the same signer's malleable twin
    assert signer(h, sig[:64] + bytes([v - 27])) is None   # v 0/1
    assert signer(h, sig[:64]) is None              # 64 bytes
    assert signer(h, b"\0" * 65) is None


def test_win_check_and_expected_value() -> None:
    sig = sign(ticket().hash(), KEY)
    assert is_winning(sig, 7, MAX_WIN_PROB) and not is_winning(sig, 7, 0)
    assert ticket(win_prob=MAX_WIN_PROB).ev() == 10**15
    assert ticket(face_value=3, win_prob=MAX_WIN_PROB // 3).ev() == Fraction(3 * (MAX_WIN_PROB // 3), MAX_WIN_PROB)


def test_aux_data_is_empty_without_expiration_params() -> None:
    assert ticket().aux_data() == (5).to_bytes(32, "big") + b"\x22" * 32
    assert ticket(creation_round=0, creation_round_block_hash=b"\0" * 32).aux_data() == b""


def test_minimal_bytes_is_gos_big_int_bytes() -> None:
    assert minimal_bytes(0) == b"" and minimal_bytes(1) == b"\x01" and minimal_bytes(256) == b"\x01\x00"


def test_the_recipient_rand_key_survives_a_restart(tmp_path: Path) -> None:
    params = dict(seed=99, sender=ADDRESS, face_value=10**15, win_prob=5, expiration_block=100,
                  price_num=1, price_den=3, aux_data=b"")
    first = RecipientRandKey(tmp_path).rand(**params)
    assert RecipientRandKey(tmp_path).rand(**params) == first     # a restart: the same rand
    assert RecipientRandKey(tmp_path).rand(**{**params, "sender": b"\x33" * 20}) != first
    assert stat.S_IMODE(os.stat(tmp_path / "recipient-rand.key").st_mode) == 0o600
    assert RecipientRandKey(tmp_path / "other").rand(**params) != first


def test_a_damaged_key_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "recipient-rand.key").write_bytes(b"short")
    with pytest.raises(ValueError, match="remove it to make a new one"):
        RecipientRandKey(tmp_path)
