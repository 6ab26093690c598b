"""LiveTable: rows keyed and updated cell by cell; what is drawn follows the data."""

from __future__ import annotations

from textual.app import App, ComposeResult

from screens.widgets import Column, LiveTable

COLS = (Column("k", "Key", 6), Column("v", "Value", 12))


class TableApp(App):
    def __init__(self, data: dict[str, str], interval: float = 0.0) -> None:
        super().__init__()
        self.data = data
        self.interval = interval

    def compose(self) -> ComposeResult:
        yield LiveTable(COLS, self.row, structural_interval=self.interval)

    def row(self, key: str) -> tuple[str, str] | None:
        return (key, self.data[key]) if key in self.data else None


def drawn(app: App) -> str:
    return "\n".join(s.text for s in app.screen._compositor.render_strips())


async def test_updates_are_drawn_and_rows_come_and_go():
    data = {f"r{i}": f"value {i}" for i in range(5)}
    app = TableApp(data)
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.query_one(LiveTable)
        table.resync(data)
        await pilot.pause()
        assert "value 3" in drawn(app)
        data["r3"] = "changed"
        table.sync(["r3"])
        await pilot.pause()
        text = drawn(app)
        assert "changed" in text and "value 3" not in text  # no stale cached render
        assert "value 2" in text
        del data["r1"]
        data["r9"] = "new row"
        table.sync(["r1", "r9"])
        await pilot.pause()
        assert table.keys_shown == ["r0", "r2", "r3", "r4", "r9"]
        assert "new row" in drawn(app) and "value 1" not in drawn(app)


async def test_rows_added_during_the_quiet_period_appear_later():
    data = {"a": "first"}
    app = TableApp(data, interval=0.3)
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.query_one(LiveTable)
        table.sync(["a"])  # the first structural change goes out at once
        data["b"] = "second"
        table.sync(["b"])  # within the interval: deferred
        assert table.keys_shown == ["a"]
        for _ in range(50):  # bounded: the deferred timer fires after ~0.3 s
            await pilot.pause(0.05)
            if table.keys_shown == ["a", "b"]:
                break
        assert table.keys_shown == ["a", "b"]
        assert "second" in drawn(app)
