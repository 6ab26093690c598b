"""Dashboard: services and their ports, clients by stage, throughput, alerts."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from pxetui.state import EngineState
from screens import fmt
from screens.base import PxeScreen
from screens.widgets import HEALTH_STYLE, LAB_KEY, SEVERITY_STYLE, engine_lost


def services_table(state: EngineState) -> Table:
    t = Table(box=None, pad_edge=False, expand=True, show_header=True, header_style="bold")
    t.add_column("service", no_wrap=True)
    t.add_column("state", no_wrap=True)
    t.add_column("ports", no_wrap=True)
    t.add_column("pid", no_wrap=True, justify="right")
    if not state.services:
        t.add_row(Text("none yet", "dim"), "", "", "")
    for h in sorted(state.services.values(), key=lambda s: s.name):
        restarts = f" x{h.restarts}" if h.restarts else ""
        t.add_row(Text(h.name), Text(h.state + restarts, HEALTH_STYLE.get(h.state, "")),
                  Text(",".join(map(str, h.ports)) or "-"), Text(str(h.pid or "-")))
    return t


def dropped_text(state: EngineState) -> Text | None:
    """One line: events per service that never reached the UI (None when there are none)."""
    shown = [(name, n) for name, n in sorted(state.dropped.items()) if n]
    if not shown:
        return None
    t = Text("dropped: ", "yellow", no_wrap=True, overflow="ellipsis")
    t.append("  ".join(f"{name} {count(n)}" for name, n in shown), "bold yellow")
    return t


def count(n: int) -> str:
    """12,345 / 123k / 45M: a count that fits a narrow box."""
    if n < 100_000:
        return f"{n:,}"
    return f"{n // 1000:,}k" if n < 10_000_000 else f"{n // 1_000_000:,}M"


def services_view(state: EngineState) -> RenderableType:
    table, dropped = services_table(state), dropped_text(state)
    return table if dropped is None else Group(table, dropped)


def stages_text(state: EngineState) -> Text:
    t = Text(no_wrap=True)
    t.append(f"Clients: {len(state.clients)}", "bold")
    t.append(f"   live transfers: {state.live_transfers()}")
    trouble = state.clients_in_trouble()
    if trouble:
        t.append(f"   stuck: {trouble}", "bold red")
    t.append("\n")
    counts = state.clients_by_stage()
    if not counts:
        t.append("no client has asked yet", "dim")
    for i, (stage, n) in enumerate(counts):
        style = "green" if stage in ("booted", "installed") else ""
        t.append(f"{stage} ", style)
        t.append(str(n), "bold " + style if style else "bold")
        t.append("\n" if i % 3 == 2 else "   ")
    return t


# What the user can do about an alert, by its key: the engine words the fact, the UI the key.
ACTIONS = {"lab-vm": f"{LAB_KEY} boots it again."}


def alerts_text(state: EngineState, limit: int = 8) -> Text:
    t = Text()
    alerts = state.sorted_alerts()
    if not alerts:
        t.append("No alerts.", "green")
        return t
    for a in alerts[:limit]:
        style = SEVERITY_STYLE.get(a.severity, "")
        t.append(f"{a.severity.upper():<7} ", style)
        t.append(f"{fmt.clock(a.ts)} {a.message}")
        action = ACTIONS.get(a.key)
        if action:
            t.append(f" {action}", "bold")
        t.append("\n")
    if len(alerts) > limit:
        t.append(f"... and {len(alerts) - limit} more (see Logs)", "dim")
    return t


class DashboardScreen(PxeScreen):
    WATCH = frozenset({"services", "clients", "transfers", "throughput", "alerts"})
    TITLE_TEXT = "Dashboard"
    NAV_MODE = "dashboard"

    def body(self) -> Iterable[Widget]:
        with Vertical(id="dash"):
            with Horizontal(id="dash-top"):
                yield Static(id="services", classes="box")
                yield Static(id="stages", classes="box")
            with Vertical(id="dash-tp", classes="box"):
                yield Static(id="tp-label")
                yield Sparkline([0.0], id="throughput")
            yield Static(id="alerts", classes="box")

    def setup(self) -> None:
        self.query_one("#services").border_title = "Services"
        self.query_one("#stages").border_title = "Boot stages"
        self.query_one("#dash-tp").border_title = "Throughput (last 60 s)"
        self.query_one("#alerts").border_title = "Alerts"

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        s = self.state
        if full or {"services", "engine"} & changed.keys():
            box = self.query_one("#services", Static)
            box.update(services_view(s))
            # without the engine, what the box shows is what it last said
            box.border_title = "Services (last known)" if engine_lost(s) else "Services"
        if full or {"clients", "transfers"} & changed.keys():
            self.query_one("#stages", Static).update(stages_text(s))
        if full or {"throughput", "transfers"} & changed.keys():
            series = s.throughput()
            # The newest second is still filling up: "now" is the last whole one.
            now = series[-2] if len(series) > 1 else 0.0
            peak = max(series) if series else 0.0
            self.query_one("#tp-label", Static).update(
                f"now {fmt.rate(now)}   peak {fmt.rate(peak)}")
            self.query_one("#throughput", Sparkline).data = series
        if full or "alerts" in changed:
            self.query_one("#alerts", Static).update(alerts_text(s))
