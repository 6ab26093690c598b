"""Settings: interface, DHCP mode, range and roots, checked by the config file's own rules.

Validation goes through `pxetui.config` (`Config.from_dict`, `check_interface`, `resolve`), so
the form shows the very messages a bad config file would print. Saving writes TOML; the engine
reads its config when it starts, so the change applies on the next start.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomli_w
from rich.text import Text
from textual.app import SystemCommand
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from pxetui.config import DEFAULT_CONFIG, DHCP_MODES, Config, ConfigError, merge, read_file, resolve
from pxetui.netinfo import InterfaceError, InterfaceInfo, check_interface
from screens.base import PxeScreen


def validate(raw: dict[str, Any], ifaces: dict[str, InterfaceInfo]) -> list[str]:
    """Every problem with the settings, worded as for a config file."""
    try:
        cfg = Config.from_dict(raw)
    except ConfigError as exc:
        return list(exc.problems)
    if not cfg.interface:
        return ["interface: not set; pick the interface to serve on"]
    try:
        info = check_interface(cfg.interface, ifaces)
        resolve(cfg, info)
    except (ConfigError, InterfaceError) as exc:
        return list(exc.problems) if isinstance(exc, ConfigError) else [str(exc)]
    except ValueError as exc:  # parse_range inside resolve on a range from_dict let through
        return [f"dhcp.range: {exc}"]
    return []


class SettingsScreen(PxeScreen):
    TITLE_TEXT = "Settings"
    NAV_MODE = "settings"

    def body(self) -> Iterable[Widget]:
        with VerticalScroll(id="settings"):
            yield DataTable(id="ifaces", cursor_type="row")
            with Horizontal(classes="field"):
                yield Label("DHCP mode", classes="label")
                yield Select([(m, m) for m in DHCP_MODES], value="auto", allow_blank=False,
                             id="mode", compact=True)
            for key, label, hint in (
                ("range", "DHCP range", "START-END, empty = from the subnet"),
                ("tftp_root", "TFTP root", "empty = <state dir>/tftp"),
                ("http_root", "HTTP root", "empty = <state dir>/http"),
                ("state_dir", "State dir", "leases, library, menus"),
            ):
                with Horizontal(classes="field"):
                    yield Label(label, classes="label")
                    yield Input(placeholder=hint, id=key, compact=True)
            yield Static(id="problems")
            with Horizontal(id="settings-actions"):
                yield Button("Save", id="save", variant="primary", compact=True)
                yield Static(id="saved")

    @property
    def config_path(self) -> Path:
        p = self.papp.config_path or os.environ.get("PXETUI_CONFIG")
        return Path(p) if p else DEFAULT_CONFIG

    def setup(self) -> None:
        self.selected_iface = ""
        self.ifaces = self.papp.interfaces_fn()
        table = self.query_one("#ifaces", DataTable)
        table.border_title = "Interface (Enter picks)"
        for label, w in (("Name", 12), ("Address", 18), ("Link", 4), ("Speed", 9), ("MAC", 17)):
            table.add_column(label, width=w)
        for i in sorted(self.ifaces.values(), key=lambda i: i.name):
            addr = f"{i.address}/{i.network.prefixlen}" if i.network else "no IPv4"
            speed = f"{i.speed_mbps} Mb/s" if i.speed_mbps else "-"
            cells = (i.name, addr, "up" if i.up else "down", speed, i.mac or "-")
            table.add_row(*(Text(c) for c in cells), key=i.name)
        self.load_file()
        self.check()

    def load_file(self) -> None:
        """Start from the config file when there is one, else from what the engine reports."""
        raw: dict[str, Any] = {}
        if self.config_path.exists():
            try:
                raw = read_file(self.config_path)
            except ConfigError as exc:
                self.query_one("#saved", Static).update(Text(str(exc), "red"))
        self.base = raw
        e = self.state.engine
        dhcp = raw.get("dhcp", {}) if isinstance(raw.get("dhcp"), dict) else {}
        self.pick(str(raw.get("interface") or e.interface or ""))
        mode = str(dhcp.get("mode") or "auto")
        self.query_one("#mode", Select).value = mode if mode in DHCP_MODES else "auto"
        self.query_one("#range", Input).value = str(dhcp.get("range") or "")
        for key, section in (("tftp_root", "tftp"), ("http_root", "http")):
            sec = raw.get(section, {}) if isinstance(raw.get(section), dict) else {}
            self.query_one(f"#{key}", Input).value = str(sec.get("root") or "")
        self.query_one("#state_dir", Input).value = str(raw.get("state_dir") or "")

    def pick(self, name: str) -> None:
        self.selected_iface = name
        table = self.query_one("#ifaces", DataTable)
        if name in self.ifaces:
            table.move_cursor(row=table.get_row_index(name), animate=False)
        table.border_subtitle = f"serving on: {name or 'none picked'}"

    def raw(self) -> dict[str, Any]:
        """The form as a config tree, on top of the file's other keys."""
        form: dict[str, Any] = {"dhcp": {"mode": self.query_one("#mode", Select).value}}
        if self.selected_iface:
            form["interface"] = self.selected_iface
        values = {k: self.query_one(f"#{k}", Input).value.strip()
                  for k in ("range", "tftp_root", "http_root", "state_dir")}
        raw = merge(self.base, form)
        for key, section, name in (("range", "dhcp", "range"), ("tftp_root", "tftp", "root"),
                                   ("http_root", "http", "root")):
            sec = dict(raw.get(section) or {})
            if values[key]:
                sec[name] = values[key]
            else:
                sec.pop(name, None)
            raw[section] = sec
        if values["state_dir"]:
            raw["state_dir"] = values["state_dir"]
        else:
            raw.pop("state_dir", None)
        return {k: v for k, v in raw.items() if v != {}}

    def check(self) -> list[str]:
        problems = validate(self.raw(), self.ifaces)
        out = self.query_one("#problems", Static)
        if problems:
            out.update(Text("\n".join(problems), "bold red"))
        else:
            out.update(Text("Settings are valid.", "green"))
        return problems

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.pick(str(event.row_key.value))
        self.check()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.check()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.check()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.save()

    def save(self) -> bool:
        saved = self.query_one("#saved", Static)
        problems = self.check()
        if problems:
            saved.update(Text("Not saved: fix the problems above first.", "bold red"))
            return False
        try:
            self.config_path.parent.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text(tomli_w.dumps(self.raw()))
        except OSError as exc:
            saved.update(Text(f"Not saved: {self.config_path}: {exc.strerror}", "bold red"))
            return False
        saved.update(Text(f"Saved {self.config_path}. It applies when the engine restarts "
                          "(quit and start pxetui again).", "green"))
        self.notify(f"Saved {self.config_path}; applies when the engine restarts", markup=False)
        saved.scroll_visible()
        return True

    def palette(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Settings: save", f"writes {self.config_path}", self.save)
