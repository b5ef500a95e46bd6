"""Helpers for the lab's monitoring tests: the Prometheus and Alertmanager HTTP APIs on mon1, as
an operator reaches them from the control machine (an admin network), and the webhook receiver
that stands in for the pager."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def get_json(url: str, timeout: float = 30) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:  # Prometheus answers bad queries with 400 + JSON
        return json.load(exc)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params) -> dict:
        return get_json(f"{self.url}{path}?{urllib.parse.urlencode(params, doseq=True)}")

    def instant(self, expr: str) -> dict:
        return self.get("/api/v1/query", query=expr)

    def range(self, expr: str, seconds: int, step: int) -> dict:
        end = time.time()
        return self.get("/api/v1/query_range", query=expr, start=end - seconds, end=end, step=step)

    def value(self, expr: str) -> float | None:
        result = self.instant(expr).get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else None

    def label_values(self, selector: str, label: str) -> list[str]:
        series = self.get("/api/v1/series", **{"match[]": selector}).get("data", [])
        return sorted({s[label] for s in series if label in s})

    def targets(self) -> list[dict]:
        return self.get("/api/v1/targets", state="active")["data"]["activeTargets"]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 2) -> Any:
    """The first truthy value of ``predicate()``, polling; fails saying what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Notification:
    """One POST from Alertmanager's webhook integration."""

    path: str                # /page or /ticket: which receiver sent it
    authorization: str       # the Authorization header as received
    body: dict[str, Any]     # Alertmanager's webhook payload (version 4)
    received: float          # time.time()

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The alerts in this notification whose labels include ``labels``."""
        return [a for a in self.body.get("alerts", [])
                if all(a.get("labels", {}).get(k) == v for k, v in labels.items())]


class AlertReceiver:
    """An HTTP server on the control machine's lab address that records every POST: the pager."""

    def __init__(self, address: str, port: int) -> None:
        received: list[Notification] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsed": raw.decode(errors="replace")}
                with lock:
                    received.append(Notification(self.path, self.headers.get("Authorization", ""), body, time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet: the test reports what matters
                pass

        self._received = received
        self._lock = lock
        self.server = ThreadingHTTPServer((address, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="alert-receiver", daemon=True)

    def __enter__(self) -> AlertReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def received(self) -> list[Notification]:
        with self._lock:
            return list(self._received)

    def wait_for(self, match: Callable[[Notification], bool], timeout: float, what: str) -> Notification:
        def found():
            return next((n for n in self.received if match(n)), None)
        try:
            return wait_until(found, timeout, what, interval=1)
        except AssertionError as exc:
            seen = [(n.path, n.body.get("status"), [a["labels"].get("alertname") for a in n.body.get("alerts", [])])
                    for n in self.received]
            raise AssertionError(f"{exc}; received: {seen}") from None
