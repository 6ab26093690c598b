"""The app attached to a real control socket (pxetui.control.ControlClient)."""

from __future__ import annotations

import asyncio
import json

from ui_feed import lab_feed
from ui_helpers import fake_ifaces, screen_text

from pxetui.control import ControlClient, socket_path
from screens.app import PxetuiApp


async def test_attaches_over_the_control_socket_and_learns_the_state_dir(tmp_path):
    got: list[dict] = []

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write("".join(json.dumps(e) + "\n" for e in lab_feed()).encode())
        await writer.drain()
        line = await reader.readline()
        got.append(json.loads(line))
        writer.close()  # then the engine goes away

    sock = socket_path(tmp_path)
    server = await asyncio.start_unix_server(engine, path=str(sock))
    app = PxetuiApp(source_factory=lambda: ControlClient.connect(sock), interfaces_fn=fake_ifaces,
                    pacing=False)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(100):  # bounded: the replay arrives over the socket
                await pilot.pause(0.02)
                if len(app.state.clients) == 5:
                    break
            assert app.state_dir == str(tmp_path)
            app.send({"cmd": "reload"}, "reload")
            for _ in range(100):
                await pilot.pause(0.02)
                if "connection" in app.state.alerts:
                    break
            app.flush()
            await pilot.pause()
            assert got == [{"cmd": "reload"}]
            text = screen_text(app)
            assert "Lost the engine: it closed the connection" in text
            # what to do: the command that starts this engine again (whole in the alert, as
            # much as 80 columns hold in the header)
            assert " Start it again: sudo pxetui serve --interface eth1" in text
            assert (f"Start it again: sudo pxetui serve --interface eth1 --state-dir {tmp_path} "
                    "(retrying every 2 s).") in app.state.alerts["connection"].message
            app.source_factory = None  # stop reconnecting before the test ends
    finally:
        server.close()
        await server.wait_closed()
