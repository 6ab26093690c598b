"""`pxetui doctor --self-test` against the real engine (`pxetui serve`) in a namespace: the boot
files each architecture gets over TFTP (blksize and windowsize negotiated), the iPXE script and
the default entry's kernel and initrd over HTTP; a configured loader that is missing is reported
in plain words with a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from netns import require_tool, wait_for
from textual.widgets import Static

from pxetui.config import Config
from pxetui.control import is_live, socket_path
from pxetui.iso.library import connect
from pxetui.menus.model import Entry, Menu, local_entry, save_menu
from screens.app import PxetuiApp
from screens.selftest import SelfTestScreen
from screens.source import MemorySource

pytestmark = pytest.mark.root


def start_engine(netns, tmp_path):  # noqa: ANN001, ANN201 - fixtures
    """`pxetui serve` in a namespace: pxelinux.0 for BIOS, a UEFI loader that exists nowhere,
    a default menu entry with a kernel and an initrd."""
    server, _client = netns.pair()
    tftp_root, http_root, state = tmp_path / "tftp", tmp_path / "http", tmp_path / "state"
    for d in (tftp_root, http_root / "linux"):
        d.mkdir(parents=True)
    loader = os.urandom(200_000)
    (tftp_root / "pxelinux.0").write_bytes(loader)
    (http_root / "linux" / "vmlinuz").write_bytes(os.urandom(300_000))
    (http_root / "linux" / "initrd.gz").write_bytes(os.urandom(500_000))
    cfg = Config(state_dir=str(state))
    state.mkdir()
    conn = connect(cfg)
    try:
        with conn:
            save_menu(conn, Menu(entries=[Entry("linux", "Linux", kernel="linux/vmlinuz",
                                                initrds=["linux/initrd.gz"]), local_entry()], default="linux"))
    finally:
        conn.close()
    common = ["--interface", "eth0", "--state-dir", str(state), "--tftp-root", str(tftp_root),
              "--http-root", str(http_root), "--boot-file", "bios=pxelinux.0",
              "--boot-file", "uefi64=site-loader.efi"]  # nowhere: not in the root, not installed
    eng = server.popen(sys.executable, "-m", "pxetui", "serve", "--dhcp", "off", "--no-capture", *common,
                       log=tmp_path / "serve.log")
    wait_for(lambda: is_live(socket_path(state)), timeout=20, what="the control socket")
    wait_for(lambda: ":69 " in server.run("ss", "-lun").stdout and ":80 " in server.run("ss", "-ltn").stdout,
             timeout=20, what="TFTP and HTTP listening")
    return server, eng, common, state, tftp_root, len(loader)


def test_self_test_fetches_what_each_architecture_gets_and_names_a_missing_loader(netns, tmp_path):
    server, eng, common, state, tftp_root, loader_size = start_engine(netns, tmp_path)

    r = server.run(sys.executable, "-m", "pxetui", "doctor", "--self-test", "--json", *common, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["server"] == "10.99.0.1"
    by = {f["what"]: f for f in doc["fetches"]}
    bios = by["bios boot file"]
    assert bios["ok"] and bios["size"] == loader_size and bios["url"] == "tftp://10.99.0.1/pxelinux.0"
    assert bios["detail"] == "blksize 1468, windowsize 8"
    uefi = by["uefi64 boot file"]
    assert not uefi["ok"] and "site-loader.efi is neither in the TFTP root" in uefi["error"], uefi
    assert "dhcp.boot_files.uefi64" in uefi["error"]
    script = by["iPXE script"]
    assert script["ok"] and script["url"] == "http://10.99.0.1/boot.ipxe" and script["size"] > 0
    assert by["kernel of entry linux"]["ok"] and by["kernel of entry linux"]["size"] == 300_000
    assert by["initrd of entry linux"]["ok"] and by["initrd of entry linux"]["size"] == 500_000
    # arm64's comes from debian-installer-12-netboot-arm64 (scripts/debian-packages.txt);
    # uefi32 has no loader installed and none configured: a note, not a fetch.
    arm64 = by["arm64 boot file"]
    assert arm64["ok"] and arm64["url"] == "tftp://10.99.0.1/shimaa64.efi" and arm64["size"] > 0, arm64
    assert any(n.startswith("uefi32: nothing to serve") for n in doc["notes"]), doc["notes"]

    # The words a technician reads.
    r = server.run(sys.executable, "-m", "pxetui", "doctor", "--self-test", *common, check=False)
    assert r.returncode == 1
    assert "FAILED  uefi64 boot file: site-loader.efi: the server answered error 1" in r.stdout, r.stdout
    assert "some clients cannot boot" in r.stdout

    # The loader installed: every fetch succeeds, exit 0.
    (tftp_root / "site-loader.efi").write_bytes(os.urandom(70_000))
    r = server.run(sys.executable, "-m", "pxetui", "doctor", "--self-test", "--json", *common, check=False)
    assert r.returncode == 0, r.stdout
    assert all(f["ok"] for f in json.loads(r.stdout)["fetches"])

    server.stop(eng)
    r = server.run(sys.executable, "-m", "pxetui", "doctor", "--self-test", *common, check=False)
    assert r.returncode == 1 and "the engine is not running" in r.stdout


async def test_the_ui_runs_the_self_test_in_the_engines_namespace_and_shows_the_report(netns, tmp_path):
    """The palette entry: the UI (here, outside the engine's namespace, as under `pxetui lab`)
    runs the self-test with the engine's own options where the engine runs."""
    require_tool("nsenter", package="util-linux")
    _server, _eng, _common, state, _root, _size = start_engine(netns, tmp_path)
    app = PxetuiApp(MemorySource([]), state_dir=str(state), pacing=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "Self-test: fetch what each architecture gets" in [c.title for c in app.get_system_commands(app.screen)]
        app.action_self_test()
        await pilot.pause()
        assert isinstance(app.screen, SelfTestScreen)
        report = app.screen.query_one("#selftest-report", Static)
        for _ in range(300):  # the worker thread fetches every file: bounded wait
            await pilot.pause(0.1)
            if "some clients cannot boot" in str(report.render()):
                break
        text = str(report.render())
        assert "ok      bios boot file: tftp://10.99.0.1/pxelinux.0  200,000 bytes" in text, text
        assert "FAILED  uefi64 boot file: site-loader.efi: the server answered error 1" in text
        assert "ok      kernel of entry linux" in text and "ok      initrd of entry linux" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SelfTestScreen)

    # The technician's short form: no options but the state directory; the engine's own are used.
    r = subprocess.run([sys.executable, "-m", "pxetui", "doctor", "--self-test", "--state-dir", str(state)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "self-test against 10.99.0.1" in r.stdout
    assert "FAILED  uefi64 boot file: site-loader.efi: the server answered error 1" in r.stdout
