"""The payment refusal the 8935 service answers with; kept free of the chain libraries so an
off-chain node never imports them."""

from __future__ import annotations


class PaymentRefused(Exception):
    """A request refused for its payment or signature: the HTTP status and body go-livepeer
    answers with, and a short reason for the log and the metrics."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
