"""URL -> source: root files, virtual providers, boot.ipxe, callbacks and seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from pxetui.config import Config
from pxetui.events import BootCallback
from pxetui.files import Client, Forbidden, NotFound, virtual
from pxetui.http.routes import BadRequest, Router, Unavailable, arch_code


class FakeBoot:
    """The menu library's three functions, recording how they were called."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def ipxe_script(self, cfg, mac, arch, client_ip):
        self.calls.append(("ipxe", mac, arch, client_ip))
        return f"#!ipxe\necho {mac} {arch} {client_ip}\n"

    def seed_file(self, cfg, mac, name):
        self.calls.append(("seed", mac, name))
        return b"#cloud-config\n" if name in ("user-data", "ubuntu/user-data") else None

    def virtual_providers(self, cfg):
        class Menus:
            def lookup(self, path, client):
                return virtual(path, b"menu") if path == "menu.ipxe" else None
        return [Menus()]


@pytest.fixture
def setup(tmp_path: Path):
    root = tmp_path / "http"
    root.mkdir()
    (root / "kernel").write_bytes(b"K" * 10)
    cfg = Config.from_dict({"interface": "eth0", "http": {"root": str(root)}})
    events: list = []
    boot = FakeBoot()
    return Router(cfg, events.append, boot=boot), boot, events, root


def test_files_and_virtual_providers(setup):
    router, _, _, _ = setup
    client = router.identify("10.0.0.5", {})
    assert router.route("/kernel", {}, client).source.size == 10
    assert router.route("/menu.ipxe", {}, client).source.data == b"menu"
    with pytest.raises(NotFound):
        router.route("/nope", {}, client)
    with pytest.raises(Forbidden):
        router.route("/../etc/passwd", {}, client)


def test_boot_ipxe_per_client_and_remembered_by_ip(setup):
    router, boot, _, _ = setup
    q = {"mac": "52-54-00-AA-BB-CC", "arch": "x86_64", "platform": "efi"}
    client = router.identify("10.0.0.5", q)
    routed = router.route("/boot.ipxe", q, client)
    assert routed.dynamic and not routed.quiet
    assert boot.calls[-1] == ("ipxe", "52:54:00:aa:bb:cc", 7, "10.0.0.5")
    # Later requests from that IP without a query are attributed to the same machine (MAC),
    # but the arch is not assumed, and boot.ipxe without a query goes by the IP alone.
    later = router.identify("10.0.0.5", {})
    assert (later.mac, later.arch) == ("52:54:00:aa:bb:cc", None)
    router.route("/boot.ipxe", {}, later)
    assert boot.calls[-1] == ("ipxe", None, None, "10.0.0.5")


def test_real_file_wins_over_generated_script(setup):
    router, boot, _, root = setup
    (root / "boot.ipxe").write_text("#!ipxe\nexit\n")
    routed = router.route("/boot.ipxe", {}, Client(ip="10.0.0.5"))
    assert routed.source.origin == "file" and not boot.calls


def test_bad_mac_is_a_clear_400(setup):
    router, _, _, _ = setup
    with pytest.raises(BadRequest, match="not a MAC"):
        router.identify("10.0.0.5", {"mac": "zz:zz"})
    assert router.identify("10.0.0.5", {"mac": ""}).mac is None  # ${net0/mac} unset


def test_callback_emits_boot_event(setup):
    router, _, events, _ = setup
    q = {"mac": "52:54:00:aa:bb:cc", "entry": "ubuntu-24.04"}
    routed = router.route("/callback/booting", q, router.identify("10.0.0.5", q))
    assert routed.quiet and routed.source.data == b"ok\n"
    (ev,) = events
    assert isinstance(ev, BootCallback)
    assert (ev.stage, ev.mac, ev.ip, ev.entry) == ("booting", "52:54:00:aa:bb:cc", "10.0.0.5", "ubuntu-24.04")
    with pytest.raises(BadRequest):
        router.route("/callback/bad stage!", {}, Client(ip="10.0.0.5"))
    router.route("/callback/booting", q, router.identify("10.0.0.5", q), "HEAD")
    assert len(events) == 1  # a HEAD is answered but is not a boot milestone


def test_seeds_by_mac_and_by_entry(setup):
    router, boot, _, _ = setup
    client = Client(ip="10.0.0.5")
    assert router.route("/seed/52:54:00:aa:bb:cc/user-data", {}, client).source.data == b"#cloud-config\n"
    assert boot.calls[-1] == ("seed", "52:54:00:aa:bb:cc", "user-data")
    assert router.route("/seed/ubuntu/user-data", {}, client).dynamic
    assert boot.calls[-1] == ("seed", None, "ubuntu/user-data")
    with pytest.raises(NotFound):
        router.route("/seed/ubuntu/ks.cfg", {}, client)


def test_missing_library_still_serves_files(tmp_path: Path, monkeypatch):
    root = tmp_path / "http"
    root.mkdir()
    (root / "kernel").write_bytes(b"K")
    cfg = Config.from_dict({"interface": "eth0", "http": {"root": str(root)}})
    monkeypatch.setattr("pxetui.http.routes.BOOT_MODULE", "pxetui.no_such_library")
    logs: list = []
    router = Router(cfg, lambda ev: None, log=lambda m, lvl: logs.append((lvl, m)))
    assert logs and logs[0][0] == "error" and "no_such_library" in logs[0][1]
    assert router.route("/kernel", {}, Client()).source.size == 1
    with pytest.raises(Unavailable):
        router.route("/boot.ipxe", {}, Client(ip="10.0.0.5"))


@pytest.mark.parametrize("arch, platform, code", [
    ("7", None, 7), ("0", None, 0), ("i386", "pcbios", 0), ("i386", None, 0), ("x86_64", "efi", 7),
    ("x86_64", None, 7), ("arm64", "efi", 11), ("i386", "efi", 6), ("sparc", None, None),
    (None, None, None), ("99999", None, None),
])
def test_arch_code(arch, platform, code):
    assert arch_code(arch, platform) == code
