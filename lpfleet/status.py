"""`lpfleet status -i INVENTORY [--json]`: the on-call view of a fleet on one screen: each
orchestrator (draining or not, sessions, capacity, work in flight, gateway connections), the
transcoders registered at it against those the inventory gives it, each balancer's view of the
orchestrators, and the alerts firing in Alertmanager. It only reads; a host that does not answer
is shown as such, not fatal."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from inventory.hosts import MONITORING
from lpfleet import haproxy
from lpfleet.remote import Fleet, RemoteError
from roles.monitoring import ALERTMANAGER_PORT


def collect(fleet: Fleet) -> dict[str, Any]:
    orchestrators = []
    for o in fleet.orchestrators:
        expected = sorted(fleet.name_at_orchestrator(t.name) for t in fleet.transcoders_of(o.name))
        entry: dict[str, Any] = {"name": o.name, "expectedTranscoders": expected}
        try:
            s = fleet.status(o.name)
        except RemoteError as exc:
            entry["error"] = str(exc)
        else:
            registered = sorted(t["name"] for t in s["transcoders"])
            entry.update({"draining": s["draining"], "sessions": s["sessions"], "capacity": s["capacity"],
                          "inFlight": s["inFlight"], "gatewayConnections": s.get("gatewayConnections"),
                          "transcoders": [{"name": t["name"], "capacity": t["capacity"], "load": t["load"]}
                                          for t in s["transcoders"]],
                          "missingTranscoders": [t for t in expected if t not in registered]})
        orchestrators.append(entry)
    balancers = []
    for lb in fleet.balancers:
        entry = {"name": lb.name}
        try:
            entry["servers"] = {name: {"status": s.status, "inRotation": s.in_rotation, "sessions": s.sessions}
                                for name, s in haproxy.servers(fleet.haproxy(lb.name)).items()}
        except RemoteError as exc:
            entry["error"] = str(exc)
        balancers.append(entry)
    alerts: dict[str, Any] = {}
    for mon in fleet.group(MONITORING):
        try:
            with urllib.request.urlopen(f"http://{mon.address}:{ALERTMANAGER_PORT}/api/v2/alerts?active=true"
                                        "&silenced=false&inhibited=false", timeout=5) as resp:
                firing = json.load(resp)
        except OSError as exc:
            alerts[mon.name] = f"error: {exc}"
            continue
        # One line per alert, host and severity (Alertmanager lists each label set).
        seen = sorted({(a["labels"].get("alertname", "?"), a["labels"].get("host", ""),
                        a["labels"].get("severity", "")) for a in firing})
        alerts[mon.name] = [{"alert": a, "host": h, "severity": s} for a, h, s in seen]
    return {"orchestrators": orchestrators, "balancers": balancers, "alerts": alerts}


def render(view: dict[str, Any]) -> str:
    lines = [f"{'ORCHESTRATOR':<14}{'STATE':<11}{'SESSIONS':>9}{'CAPACITY':>10}{'IN FLIGHT':>11}{'GATEWAYS':>10}"
             "  TRANSCODERS"]
    for o in view["orchestrators"]:
        if "error" in o:
            lines.append(f"{o['name']:<14}unreachable: {o['error']}")
            continue
        state = "draining" if o["draining"] else "ready"
        registered = ", ".join(f"{t['name'].split(':')[0]} ({t['load']}/{t['capacity']})" for t in o["transcoders"])
        missing = f"; MISSING {', '.join(o['missingTranscoders'])}" if o["missingTranscoders"] else ""
        expected = len(o["expectedTranscoders"])
        count = f"{len(o['transcoders'])}/{expected}" if expected else f"{len(o['transcoders'])}"
        lines.append(f"{o['name']:<14}{state:<11}{o['sessions']:>9}{o['capacity']:>10}{o['inFlight']:>11}"
                     f"{o['gatewayConnections'] if o['gatewayConnections'] is not None else '-':>10}"
                     f"  {count}: {registered or 'none'}{missing}")
    for lb in view["balancers"]:
        if "error" in lb:
            lines.append(f"balancer {lb['name']}: unreachable: {lb['error']}")
        else:
            servers = ", ".join(f"{n} {s['status']} ({s['sessions']} conn)" for n, s in lb["servers"].items())
            lines.append(f"balancer {lb['name']}: {servers}")
    for mon, alerts in view["alerts"].items():
        if isinstance(alerts, str):
            lines.append(f"alerts ({mon}): {alerts}")
        elif not alerts:
            lines.append(f"alerts ({mon}): none firing")
        else:
            lines.append(f"alerts ({mon}): " + "; ".join(
                f"{a['alert']} {a['host']} [{a['severity']}]".replace("  ", " ") for a in alerts))
    return "\n".join(lines)
