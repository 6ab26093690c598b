"""A UI that reads its stream promptly keeps up with a storm the engine relays in big turns.

Each turn of the supervisor's loop relays up to 256 KiB from every service pipe, and a UI's
writer hands its socket at most one kernel send buffer per turn. With the default buffer
(~200 KiB) a UI reading as fast as it could fell events.ui_queue_max behind and was cut loose in
every round of a 1,000-client storm (bench/storm); events.ui_send_buffer widens it. The case
with the narrowest buffer allowed shows the cut this guards against, so the test can fail.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest
from netns import require_root

from pxetui.config import Config
from pxetui.control import socket_path
from pxetui.events import DhcpIgnored
from pxetui.supervisor import Supervisor

pytestmark = pytest.mark.root

TURNS = 10
PER_TURN = 1250  # ~1 MiB of event lines: four service pipes' worth in one turn of the loop
QUEUE_MAX = 5000


class Reader:
    """A UI that reads everything as soon as it arrives (in a thread) and counts the storm's lines."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            self.data.extend(chunk)

    def storm_lines(self) -> int:
        return bytes(self.data).count(b'"reason": "storm ') + bytes(self.data).count(b'"reason":"storm ')

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # ends the thread's recv; a close alone does not
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.mark.parametrize(("send_buffer", "cut"), [(4 * 1024 * 1024, False), (65536, True)])
async def test_a_prompt_ui_is_not_cut_by_a_storm_relayed_in_big_turns(tmp_path: Path, send_buffer: int,
                                                                      cut: bool) -> None:
    require_root()  # a send buffer past net.core.wmem_max needs root (the engine runs as root)
    cfg = Config.from_dict({"interface": "eth0", "state_dir": str(tmp_path / "st"),
                            "events": {"ui_queue_max": QUEUE_MAX, "ui_send_buffer": send_buffer}})
    cfg.server_ip, cfg.netmask = "10.99.0.1", "255.255.255.0"
    sup = Supervisor(cfg, names=[])
    await sup.start()
    ui = Reader(socket_path(cfg.state_dir))
    try:
        for _ in range(500):
            if sup.subscribers:
                break
            await asyncio.sleep(0.01)
        assert sup.subscribers
        for turn in range(TURNS):
            for i in range(PER_TURN):
                sup.publish(DhcpIgnored(service="dhcp", reason=f"storm {turn}.{i} " + "x" * 700))
            await asyncio.sleep(0)  # one turn of the loop: the UI's writer gets its chance
        for _ in range(500):  # what was queued reaches the UI (or the UI is gone)
            if not sup.subscribers or ui.storm_lines() >= TURNS * PER_TURN:
                break
            await asyncio.sleep(0.01)
        was_cut = "ui" in sup.state.dropped
        got = ui.storm_lines()
    finally:
        ui.close()
        await sup.stop()
    if cut:
        assert was_cut, "a socket buffer narrower than a turn's relay should have left the UI behind"
    else:
        assert not was_cut, f"a UI reading promptly was cut loose: {dict(sup.state.dropped)}"
        assert got == TURNS * PER_TURN
