"""A small modal that picks a menu entry (or takes a typed entry id when no menu is known)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option


class EntryPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, entries: list[tuple[str, str]], mac: str) -> None:
        super().__init__()
        self.entries = entries
        self.mac = mac

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(f"Boot {self.mac} once into:")
            if self.entries:
                yield OptionList(*(Option(Text(f"{title}  ({eid})"), id=eid)
                                   for eid, title in self.entries), id="entries")
            else:
                yield Label("No menu entries known; type an entry id:", classes="dim")
                yield Input(placeholder="entry id", id="entry-id")
            yield Label("Enter to choose, Esc to cancel", classes="dim")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value:
            self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
