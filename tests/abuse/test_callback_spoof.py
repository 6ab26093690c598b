"""Callback spoofing (issue 13 point 5, docs/SECURITY.md "Callbacks and seeds"): a host on the
LAN tries to spend another machine's boot-once and mark it booted, with the old token-less URL,
made-up tokens, the victim's own token stolen, and `?mac=VICTIM` claims. The whole engine runs as
deployed (`pxetui serve`, full DHCP, tracker, supervisor) in a namespace; the victim gets its lease
and its script, and downloads a file during the attack; then its own callback counts."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from netns import require_tool, wait_for
from services import udhcpc_lease

from pxetui import store
from pxetui.control import ControlClient, is_live, socket_path
from pxetui.menus import model
from pxetui.menus.model import Entry, Menu, local_entry

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

SERVER, ATTACKER = "10.99.0.1", "10.99.0.50"
URL = f"http://{SERVER}"
VICTIM = "52:54:00:ab:cd:01"
ATTACKS = 300  # requests the attacker sends, cycling through its tricks
ATTACK_SECONDS = 60  # and the most time it may take


# Runs in the attacker's namespace; argv: the victim's stolen callback token. Prints one JSON
# list of [trick, HTTP status] and the attacker's own script's callback token.
ATTACK = r"""
import http.client, json, os, sys, time
stolen = sys.argv[1]
n, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
victim = sys.argv[4]
tricks = [
    ("untokened", f"/callback/booted?mac={victim}&entry=inst"),
    ("forged", None),
    ("stolen", f"/callback/{stolen}/booted?mac={victim}&entry=inst"),
]
def get(path):
    c = http.client.HTTPConnection("10.99.0.1", 80, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()
# What the victim's script would be, asked for by the attacker claiming the victim's MAC.
status, script = get(f"/boot.ipxe?mac={victim}&arch=x86_64&platform=efi")
own = script.decode().split("/callback/", 1)[1].split("/", 1)[0] if b"/callback/" in script else ""
out = []
for i in range(n):
    if time.monotonic() > deadline:
        break
    kind, path = tricks[i % len(tricks)]
    if path is None:
        path = f"/callback/{os.urandom(16).hex()}/booted?mac={victim}"
    out.append([kind, get(path)[0]])
print(json.dumps({"results": out, "own": own, "script_status": status}))
"""


class Watch:
    """A UI-style client on the control socket for the whole test, keeping every event."""

    def __init__(self, sock: Path) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run(sock)), daemon=True)
        self.thread.start()

    async def _run(self, sock: Path) -> None:
        client = await ControlClient.connect(sock)
        try:
            async for ev in client.events():  # ends when the engine stops
                with self.lock:
                    self.events.append(ev)
        finally:
            await client.close()

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("type") == type_
                    and all(e.get(k) == v for k, v in match.items())]


def boot_once(db: Path) -> str | None:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT boot_once FROM host_overrides WHERE mac = ?", (VICTIM,)).fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def test_callback_spoofing_is_refused_and_the_victim_still_boots(netns, tmp_path: Path) -> None:
    require_tool("busybox", package="busybox-static")
    require_tool("curl")
    server, victim, attacker = netns.lan(f"{SERVER}/24", None, f"{ATTACKER}/24")
    victim.run("ip", "link", "set", "eth0", "address", VICTIM)
    tftp_root, http_root, state = tmp_path / "tftp", tmp_path / "http", tmp_path / "state"
    tftp_root.mkdir()
    http_root.mkdir()
    state.mkdir()
    (http_root / "vmlinuz").write_bytes(os.urandom(4096))
    payload = os.urandom(8_000_000)
    (http_root / "big.img").write_bytes(payload)
    # The menu the lab uses for its busybox boot: its kernel line carries {callback}; the victim
    # is to boot once into it.
    db = state / "pxetui.db"
    conn = store.connect(db)
    try:
        entry = Entry(id="inst", label="Installer", kernel="vmlinuz", args="console=ttyS0 pxetui_callback={callback}")
        with conn:
            model.save_menu(conn, Menu(entries=[entry, local_entry()], default="local"))
            store.set_host_override(conn, VICTIM, boot_once="inst")
    finally:
        conn.close()

    eng = server.popen(sys.executable, "-m", "pxetui", "serve", "--interface", "eth0", "--dhcp", "full",
                       "--state-dir", str(state), "--tftp-root", str(tftp_root), "--http-root", str(http_root),
                       log=tmp_path / "serve.log")
    try:
        sock = socket_path(state)
        wait_for(lambda: is_live(sock), timeout=30, what="the control socket")
        watch = Watch(sock)
        wait_for(lambda: {e["service"] for e in watch.of("ServiceState", state="running")} >= {"dhcp", "http"},
                 timeout=30, what="DHCP and HTTP running")

        # The victim: a lease from our DHCP, then its script, as iPXE would fetch it.
        victim_ip = udhcpc_lease(victim, tmp_path)

        def victim_script() -> str | None:
            r = victim.run("curl", "-sS", f"{URL}/boot.ipxe?mac={VICTIM}&arch=x86_64&platform=efi", check=False)
            return r.stdout if "/callback/" in r.stdout else None
        text = wait_for(victim_script, timeout=10, interval=0.3, what="the victim's script with its callback")
        assert "choose --default inst" in text  # its boot-once entry
        callback = text.split("pxetui_callback=", 1)[1].split()[0]
        token = callback.rsplit("/", 1)[1]
        assert callback == f"{URL}/callback/{token}" and f"{callback}/booting?entry=inst" in text

        # The attack, while the victim downloads an ordinary file.
        atk = attacker.popen(sys.executable, "-c", ATTACK, token, str(ATTACKS), str(ATTACK_SECONDS), VICTIM,
                             stdout=subprocess.PIPE)
        started = time.monotonic()
        got = tmp_path / "big.got"
        r = victim.run("curl", "-sS", "-o", str(got), "-w", "%{http_code}", f"{URL}/big.img", timeout=60)
        assert r.stdout == "200" and got.read_bytes() == payload
        out, _ = atk.communicate(timeout=ATTACK_SECONDS + 30)
        elapsed = time.monotonic() - started
        report = json.loads(out)
        results = report["results"]
        assert len(results) >= 30, f"the attack was cut short: {len(results)} requests"
        assert {status for _, status in results} == {403}, results[:10]
        assert {kind for kind, _ in results} == {"untokened", "forged", "stolen"}
        # Claiming to be the victim got the attacker its own script: not the victim's token.
        assert report["script_status"] == 200 and report["own"] and report["own"] != token

        # Nothing was spent or marked: boot-once still set, no callback, not booted.
        assert boot_once(db) == "inst"
        assert not watch.of("BootCallback", mac=VICTIM)
        assert not [u for u in watch.of("ClientUpdate", mac=VICTIM) if u.get("stage") == "booted"]
        # Each trick shows as an alert naming the attacker, once per interval, not per request.
        alerts = [a for a in watch.of("Alert") if a.get("ip") == ATTACKER]
        keys = {a["key"] for a in alerts}
        assert {f"untokened:{ATTACKER}", f"badtoken:{ATTACKER}", f"misattributed:{ATTACKER}"} <= keys
        assert len(alerts) <= len(keys) * (2 + int(elapsed / 10)), [a["message"] for a in alerts]
        assert len(alerts) < len(results) // 10

        # The victim's own callback, from its leased address, with its token: counted.
        r = victim.run("curl", "-sS", f"{callback}/booted")
        assert r.stdout == "ok\n"
        cb = wait_for(lambda: watch.of("BootCallback", mac=VICTIM, stage="booted"), timeout=10,
                      what="the victim's callback")[0]
        assert cb["ip"] == victim_ip
        wait_for(lambda: boot_once(db) is None, timeout=10, what="boot-once spent by the real callback")
        wait_for(lambda: [u for u in watch.of("ClientUpdate", mac=VICTIM) if u.get("stage") == "booted"],
                 timeout=10, what="the tracker marking the victim booted")
    finally:
        server.stop(eng, timeout=15)
