"""Seed spoofing (issue 13 point 5, docs/SECURITY.md "Callbacks and seeds"): seeds hold install
passwords. A host on the LAN asks for them with the old token-less URLs, made-up tokens, a
callback token, and its own seed token for another machine's seed. The HTTP service runs as the
supervisor runs it, in its own namespace; the victim takes its seeds with the tokens its script
carries and downloads an ordinary file during the attack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import require_tool, wait_for
from services import ServiceProc, base_config

from pxetui import store
from pxetui.menus import model, seeds
from pxetui.menus.model import Entry, Menu, local_entry

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

SERVER, VICTIM_IP, ATTACKER = "10.99.0.1", "10.99.0.2", "10.99.0.50"
URL = f"http://{SERVER}"
VICTIM = "52:54:00:ab:cd:02"
ENTRY_SEED = b"#kickstart\nrootpw --plaintext entry-secret-4711\n"
MAC_SEED = b"#cloud-config\npassword: machine-secret-0815\n"
ATTACKS = 300  # requests the attacker sends, cycling through its tricks
ATTACK_SECONDS = 60

# Runs in the attacker's namespace. Prints {"results": [[trick, status, leaked]], "own": ...}:
# `leaked` is whether a body carried a secret of the victim.
ATTACK = r"""
import http.client, json, os, sys, time
n, deadline, victim = int(sys.argv[1]), time.monotonic() + float(sys.argv[2]), sys.argv[3]
secrets = [s.encode() for s in sys.argv[4:]]
def get(path):
    c = http.client.HTTPConnection("10.99.0.1", 80, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()
# The attacker's own script (it may boot like anyone): its own tokens, for its own MAC.
_, script = get(f"/boot.ipxe?mac={victim}&arch=x86_64&platform=efi")
text = script.decode()
own_seed = text.split("/seed/", 1)[1].split("/", 1)[0]
own_cb = text.split("/callback/", 1)[1].split("/", 1)[0]
tricks = [
    ("untokened", "/seed/inst/ks.cfg"),
    ("untokened", f"/seed/{victim}/user-data"),
    ("forged", None),
    ("callback-token", f"/seed/{own_cb}/inst/ks.cfg"),
    ("others-seed", f"/seed/{own_seed}/{victim}/user-data"),
]
out = []
for i in range(n):
    if time.monotonic() > deadline:
        break
    kind, path = tricks[i % len(tricks)]
    if path is None:
        path = f"/seed/{os.urandom(16).hex()}/{victim}/user-data"
    status, body = get(path)
    out.append([kind, status, any(s in body for s in secrets)])
# By design an entry's seed goes to any machine that boots that entry (docs/SECURITY.md).
status, body = get(f"/seed/{own_seed}/inst/ks.cfg")
print(json.dumps({"results": out, "own_entry_seed": [status, body.decode()]}))
"""


def test_seed_spoofing_is_refused_and_the_victim_gets_its_seeds(netns, tmp_path: Path) -> None:
    require_tool("curl")
    server, victim, attacker = netns.lan(f"{SERVER}/24", f"{VICTIM_IP}/24", f"{ATTACKER}/24")
    victim.run("ip", "link", "set", "eth0", "address", VICTIM)
    root = tmp_path / "http"
    root.mkdir()
    (root / "vmlinuz").write_bytes(os.urandom(4096))
    payload = os.urandom(8_000_000)
    (root / "big.img").write_bytes(payload)
    cfg = base_config(tmp_path, http={"root": str(root)})
    conn = store.connect(cfg.db_path)
    try:
        entry = Entry(id="inst", label="Installer", kernel="vmlinuz", args="ip=dhcp",
                      seed_args="inst.ks={http}/seed/inst/ks.cfg")
        with conn:
            model.save_menu(conn, Menu(entries=[entry, local_entry()], default="inst"))
        seeds.set_seed(conn, "ks.cfg", ENTRY_SEED, entry="inst")  # switches the seed arguments on
        seeds.set_seed(conn, "user-data", MAC_SEED, mac=VICTIM)
    finally:
        conn.close()

    svc = ServiceProc(server, "http", cfg, tmp_path)
    try:
        svc.wait_running()
        text = victim.run("curl", "-sS", f"{URL}/boot.ipxe?arch=x86_64&platform=efi").stdout
        ks = text.split("inst.ks=", 1)[1].split()[0]
        token = ks.split("/seed/", 1)[1].split("/", 1)[0]
        assert ks == f"{URL}/seed/{token}/inst/ks.cfg"

        atk = attacker.popen(sys.executable, "-c", ATTACK, str(ATTACKS), str(ATTACK_SECONDS), VICTIM,
                             ENTRY_SEED.decode().split()[-1], MAC_SEED.decode().split()[-1],
                             stdout=subprocess.PIPE)
        started = time.monotonic()
        # During the attack: the victim's ordinary download and its own seeds, with its token.
        got = tmp_path / "big.got"
        r = victim.run("curl", "-sS", "-o", str(got), "-w", "%{http_code}", f"{URL}/big.img", timeout=60)
        assert r.stdout == "200" and got.read_bytes() == payload
        assert victim.run("curl", "-sS", ks).stdout == ENTRY_SEED.decode()
        assert victim.run("curl", "-sS", f"{URL}/seed/{token}/{VICTIM}/user-data").stdout == MAC_SEED.decode()
        out, _ = atk.communicate(timeout=ATTACK_SECONDS + 30)
        elapsed = time.monotonic() - started
        report = json.loads(out)
        results = report["results"]
        assert len(results) >= 50, f"the attack was cut short: {len(results)} requests"
        assert {kind for kind, _, _ in results} == {"untokened", "forged", "callback-token", "others-seed"}
        assert {status for _, status, _ in results} == {403}, results[:10]
        assert not any(leaked for _, _, leaked in results)  # not one byte of a secret
        assert report["own_entry_seed"] == [200, ENTRY_SEED.decode()]

        # Each trick is an alert naming the attacker, once per interval, not per request.
        alerts = [a for a in svc.of("Alert") if a.get("ip") == ATTACKER]
        keys = {a["key"] for a in alerts}
        assert keys == {f"untokened:{ATTACKER}", f"badtoken:{ATTACKER}", f"misattributed:{ATTACKER}"}
        assert len(alerts) <= len(keys) * (2 + int(elapsed / 10))
        assert not [a for a in svc.of("Alert") if a.get("ip") == VICTIM_IP]
        # The refusals are failed transfers (403) of the attacker; the victim's seeds are
        # recorded without their token.
        wait_for(lambda: svc.of("TransferFinished", path="seed/inst/ks.cfg", ip=VICTIM_IP, mac=VICTIM),
                 what="the victim's seed transfer")
        assert all(e["ip"] == ATTACKER for e in svc.of("TransferFailed", status=403))
        assert not [e for e in svc.events if token in json.dumps(e)]
    finally:
        svc.stop()
