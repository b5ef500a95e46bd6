"""Winning tickets on disk until the chain has them: sqlite in the datadir, every write synced.

A ticket is written (and fsync'd, sqlite `synchronous=FULL`) before ``add`` returns, so an
orchestrator that answers a segment only after ``add`` can lose no winning ticket to a crash.
It leaves the queue only when its redemption was mined or the chain says it is used: a reverted
redemption (not enough deposit, round not initialized, gas) stays, with the reason and the number
of attempts, and is tried again while it can still be redeemed (go-livepeer marks it redeemed
and drops it: go-livepeer #4013). One whose creation round has expired can never be redeemed:
it is kept, marked `expired`, for the operator to see, and no longer tried.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from lpnode.pm.ticket import Ticket

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    sig BLOB PRIMARY KEY,
    recipient BLOB NOT NULL,
    sender BLOB NOT NULL,
    face_value TEXT NOT NULL,
    win_prob TEXT NOT NULL,
    sender_nonce INTEGER NOT NULL,
    recipient_rand_hash BLOB NOT NULL,
    creation_round INTEGER NOT NULL,
    creation_round_block_hash BLOB NOT NULL,
    recipient_rand TEXT NOT NULL,
    params_expiration_block INTEGER NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    tx_hash TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS tickets_state ON tickets (state, params_expiration_block);
"""

PENDING, REDEEMED, USED, EXPIRED = "pending", "redeemed", "used", "expired"
FORWARDED = "forwarded"  # handed to a separate redeemer (-redeemerAddr), which has it on disk


@dataclass(frozen=True)
class WinningTicket:
    ticket: Ticket
    sig: bytes
    recipient_rand: int
    params_expiration_block: int
    created_at: float = 0.0
    attempts: int = 0
    last_error: str | None = None
    state: str = PENDING


class TicketQueue:
    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        # FULL: the commit is on disk (WAL and its fsync) before add() returns.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, w: WinningTicket) -> bool:
        """Keep a winning ticket; False if it is already here (the same signature)."""
        t = w.ticket
        cur = self._db.execute(
            "INSERT OR IGNORE INTO tickets (sig, recipient, sender, face_value, win_prob, sender_nonce, "
            "recipient_rand_hash, creation_round, creation_round_block_hash, recipient_rand, "
            "params_expiration_block, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (w.sig, t.recipient, t.sender, str(t.face_value), str(t.win_prob), t.sender_nonce,
             t.recipient_rand_hash, t.creation_round, t.creation_round_block_hash, str(w.recipient_rand),
             w.params_expiration_block, w.created_at or time.time()))
        return cur.rowcount == 1

    def due(self, latest_block: int, limit: int = 100) -> list[WinningTicket]:
        """Pending tickets whose params have expired by ``latest_block`` (go-livepeer redeems only
        then, so the recipientRand is no longer in use), oldest first."""
        rows = self._db.execute(
            "SELECT * FROM tickets WHERE state = ? AND params_expiration_block <= ? ORDER BY created_at LIMIT ?",
            (PENDING, latest_block, limit)).fetchall()
        return [self._row(r) for r in rows]

    def pending(self) -> list[WinningTicket]:
        rows = self._db.execute("SELECT * FROM tickets WHERE state = ? ORDER BY created_at", (PENDING,)).fetchall()
        return [self._row(r) for r in rows]

    def get(self, sig: bytes) -> WinningTicket | None:
        row = self._db.execute("SELECT * FROM tickets WHERE sig = ?", (sig,)).fetchone()
        return self._row(row) if row else None

    def failed(self, sig: bytes, reason: str) -> None:
        """A redemption attempt failed: the ticket stays pending, with the reason."""
        self._db.execute("UPDATE tickets SET attempts = attempts + 1, last_error = ? WHERE sig = ?", (reason, sig))

    def done(self, sig: bytes, state: str, tx_hash: str | None = None, reason: str | None = None) -> None:
        """The ticket left the queue: redeemed (``tx_hash``), used (the chain says so), expired,
        or forwarded to the redeemer."""
        assert state in (REDEEMED, USED, EXPIRED, FORWARDED)
        self._db.execute("UPDATE tickets SET state = ?, tx_hash = ?, last_error = COALESCE(?, last_error), "
                         "done_at = ? WHERE sig = ?", (state, tx_hash, reason, time.time(), sig))

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, COUNT(*) FROM tickets GROUP BY state").fetchall())

    def pending_value(self, sender: bytes) -> int:
        """The face value of ``sender``'s tickets not yet redeemed (it lowers its max float)."""
        rows = self._db.execute("SELECT face_value FROM tickets WHERE state = ? AND sender = ?",
                                (PENDING, sender)).fetchall()
        return sum(int(r[0]) for r in rows)

    def oldest_pending_age(self, now: float | None = None) -> float:
        row = self._db.execute("SELECT MIN(created_at) FROM tickets WHERE state = ?", (PENDING,)).fetchone()
        return 0.0 if row[0] is None else (now or time.time()) - float(row[0])

    @staticmethod
    def _row(r: tuple) -> WinningTicket:
        (sig, recipient, sender, face_value, win_prob, nonce, rand_hash, creation_round, block_hash, rand,
         expiration, created_at, state, attempts, last_error, _tx, _done) = r
        ticket = Ticket(recipient=bytes(recipient), sender=bytes(sender), face_value=int(face_value),
                        win_prob=int(win_prob), sender_nonce=int(nonce), recipient_rand_hash=bytes(rand_hash),
                        creation_round=int(creation_round), creation_round_block_hash=bytes(block_hash))
        return WinningTicket(ticket=ticket, sig=bytes(sig), recipient_rand=int(rand),
                             params_expiration_block=int(expiration), created_at=float(created_at),
                             attempts=int(attempts), last_error=last_error, state=state)
