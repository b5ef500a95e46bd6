"""lpnode.pm.queue: winning tickets on disk, due once their params expired, kept on failure."""

from __future__ import annotations

from pathlib import Path

from lpnode.pm.queue import EXPIRED, PENDING, REDEEMED, TicketQueue, WinningTicket
from lpnode.pm.ticket import Ticket, recipient_rand_hash


def winning(nonce: int, expiration: int, created_at: float) -> WinningTicket:
    ticket = Ticket(recipient=b"\x01" * 20, sender=b"\x02" * 20, face_value=2**255 + nonce, win_prob=2**256 - 1,
                    sender_nonce=nonce, recipient_rand_hash=recipient_rand_hash(nonce), creation_round=9,
                    creation_round_block_hash=b"\x03" * 32)
    return WinningTicket(ticket=ticket, sig=bytes([nonce]) * 65, recipient_rand=2**250 + nonce,
                         params_expiration_block=expiration, created_at=created_at)


def test_tickets_come_back_whole_and_due_once_their_params_expired(tmp_path: Path) -> None:
    q = TicketQueue(tmp_path / "t.sqlite3")
    a, b = winning(1, expiration=100, created_at=10.0), winning(2, expiration=50, created_at=20.0)
    assert q.add(a) and q.add(b) and not q.add(a)
    assert [w.sig for w in q.due(60)] == [b.sig]
    assert [w.sig for w in q.due(100)] == [a.sig, b.sig]          # oldest first
    again = TicketQueue(tmp_path / "t.sqlite3").get(a.sig)         # another process, after a restart
    assert again is not None and again.ticket == a.ticket and again.recipient_rand == a.recipient_rand
    assert again.ticket.hash() == a.ticket.hash()                  # big ints and bytes exactly as they were


def test_a_failure_keeps_the_ticket_and_done_takes_it_out(tmp_path: Path) -> None:
    q = TicketQueue(tmp_path / "t.sqlite3")
    a, b = winning(1, 0, 10.0), winning(2, 0, 20.0)
    q.add(a)
    q.add(b)
    q.failed(a.sig, "sender deposit and reserve insufficient to cover ticket face value")
    kept = q.get(a.sig)
    assert kept is not None and kept.state == PENDING and kept.attempts == 1
    q.done(a.sig, REDEEMED, tx_hash="0xabc")
    q.done(b.sig, EXPIRED, reason="ticket is expired")
    assert q.due(10**9) == [] and q.counts() == {REDEEMED: 1, EXPIRED: 1}
    assert q.oldest_pending_age() == 0.0
