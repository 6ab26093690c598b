"""Virtual files: generated menus per listening address, per-MAC menus, boot loaders, files
inside imported ISOs, a real file winning over a generated one, iPXE scripts and seeds."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from netns import require_tool
from services import library_config

from pxetui import attribution, store, tokens
from pxetui.config import Config
from pxetui.files import Client, NotFound, Resolver
from pxetui.iso import library, testiso
from pxetui.iso.library import import_iso
from pxetui.library import provider
from pxetui.library.provider import effective_sources, ipxe_script, seed_file, virtual_providers
from pxetui.menus import model, seeds


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return library_config(tmp_path)


@pytest.fixture
def live(cfg: Config, tmp_path: Path) -> Path:
    require_tool("xorriso")
    iso = testiso.build(tmp_path / "live.iso", testiso.layout("debian-live"))
    import_iso(cfg, iso, name="live")
    return iso


def text(res: Resolver, name: str, client: Client | None = None) -> str:
    src = res.resolve(name, client or Client())
    assert src.data is not None, f"{name} is not generated"
    return src.data.decode()


def test_empty_root_still_serves_the_boot_loaders(cfg: Config) -> None:
    require_tool("/usr/lib/PXELINUX/pxelinux.0", package="pxelinux")
    require_tool("/usr/lib/ipxe/undionly.kpxe", package="ipxe")
    res = Resolver(cfg.tftp_root, virtual_providers(cfg))
    for name in ("pxelinux.0", "ldlinux.c32", "menu.c32", "libutil.c32", "grubx64.efi",
                 "shimx64.efi", "undionly.kpxe", "ipxe.efi", "snponly.efi", "vesamenu.c32"):
        src = res.resolve(name)
        assert src.path and src.size == os.path.getsize(src.path) > 0, name
    with pytest.raises(NotFound):
        res.resolve("nonexistent.efi")


def test_menus_are_filled_in_per_listening_address(cfg: Config, live: Path) -> None:
    other = copy.deepcopy(cfg)
    other.server_ip, other.http.port = "192.168.5.1", 8080
    a = Resolver(cfg.tftp_root, virtual_providers(cfg))
    b = Resolver(other.tftp_root, virtual_providers(other))
    fetch_a = "fetch=http://10.99.0.1/iso/live/live/filesystem.squashfs"
    fetch_b = "fetch=http://192.168.5.1:8080/iso/live/live/filesystem.squashfs"
    for name in ("pxelinux.cfg/default", "grub/grub.cfg", "grub.cfg"):
        ta, tb = text(a, name), text(b, name)
        assert fetch_a in ta and fetch_b in tb, name
        assert "{http}" not in ta
    assert text(a, "grub/grub.cfg") == text(a, "/grub.cfg")  # GRUB's prefix and the root


def test_files_inside_the_iso_and_the_whole_iso(cfg: Config, live: Path) -> None:
    res = Resolver(cfg.tftp_root, virtual_providers(cfg))
    want = testiso.layout("debian-live")["live/vmlinuz-6.1.0-18-amd64"]
    src = res.resolve("iso/live/live/vmlinuz-6.1.0-18-amd64")
    assert (src.origin, src.path, src.size) == ("iso", str(live), len(want))
    with src:
        assert src.read(src.fd, 0, src.size) == want
    whole = res.resolve("iso/live.iso")
    assert (whole.origin, whole.path, whole.offset, whole.size) == ("iso", str(live), 0, live.stat().st_size)
    with pytest.raises(NotFound):
        res.resolve("iso/live/nope")
    with pytest.raises(NotFound):
        res.resolve("iso/other.iso")


def test_a_real_file_wins_and_the_ui_can_tell(cfg: Config, live: Path) -> None:
    assert effective_sources(cfg)["pxelinux.cfg/default"] == "generated"
    real = Path(cfg.tftp_root) / "pxelinux.cfg" / "default"
    real.parent.mkdir()
    real.write_text("DEFAULT handmade\n")
    res = Resolver(cfg.tftp_root, virtual_providers(cfg))
    src = res.resolve("pxelinux.cfg/default")
    assert src.origin == "file" and src.path == str(real)
    eff = effective_sources(cfg)
    assert eff["pxelinux.cfg/default"] == f"file: {real}"
    assert eff["grub/grub.cfg"] == "generated"
    assert eff["pxelinux.0"].startswith(("package: ", "missing: "))
    assert set(eff) >= {"pxelinux.0", "grubx64.efi", "wimboot"}  # every boot loader is listed
    (Path(cfg.http_root) / "boot.ipxe").write_text("#!ipxe\n")
    assert effective_sources(cfg)["boot.ipxe"].startswith("file: ")
    outside = Path(cfg.tftp_root).parent / "outside.cfg"
    outside.write_text("x")
    (Path(cfg.tftp_root) / "grub.cfg").symlink_to(outside)
    assert effective_sources(cfg)["grub.cfg"].startswith("refused: ")


def test_menu_changes_reach_a_running_provider(cfg: Config, live: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider, "_RECHECK", 0.0)
    res = Resolver(cfg.tftp_root, virtual_providers(cfg))
    assert "LABEL live" in text(res, "pxelinux.cfg/default")
    library.remove_iso(cfg, "live")  # another process (the CLI, the UI) commits
    assert "LABEL live" not in text(res, "pxelinux.cfg/default")


def test_per_mac_pxelinux_menu_only_for_overridden_hosts(cfg: Config, live: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider, "_RECHECK", 0.0)
    conn = store.connect(cfg.db_path)
    store.set_host_override(conn, "52:54:00:12:34:56", entry="live")
    conn.close()
    res = Resolver(cfg.tftp_root, virtual_providers(cfg))
    per_mac = text(res, "pxelinux.cfg/01-52-54-00-12-34-56")
    assert "DEFAULT live" in per_mac
    assert "DEFAULT local" in text(res, "pxelinux.cfg/default")
    with pytest.raises(NotFound):  # pxelinux then falls through to `default` at once
        res.resolve("pxelinux.cfg/01-52-54-00-99-99-99")


def test_ipxe_script_per_architecture(cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("xorriso")
    import_iso(cfg, testiso.build(tmp_path / "mt.iso", testiso.layout("memtest86+")), name="mt")
    import_iso(cfg, testiso.build(tmp_path / "arch.iso", testiso.layout("arch")), name="arch")
    # 10.99.0.50 is 52:54:00:00:00:01 on the wire: its script carries its tokens.
    wire = {"10.99.0.50": "52:54:00:00:00:01"}
    monkeypatch.setattr(attribution.for_config(cfg), "mac_for", wire.get)
    bios = ipxe_script(cfg, "52:54:00:00:00:01", 0, "10.99.0.50")
    efi7 = ipxe_script(cfg, "52:54:00:00:00:01", 7, "10.99.0.50")
    efi9 = ipxe_script(cfg, "52:54:00:00:00:01", 9, "10.99.0.50")
    assert efi7 == efi9  # docs/FIELD-NOTES.md: 7 and 9 are both x64 UEFI
    assert "item mt-bios" in bios and "item mt-uefi" not in bios
    assert "item mt-uefi" in efi7 and "item mt-bios" not in efi7
    assert "kernel http://10.99.0.1/iso/arch/arch/boot/x86_64/vmlinuz-linux initrd=intel-ucode.img" in efi7
    assert "initrd=" not in bios.split(":arch\n", 1)[1].split("\n")[0]
    # The callback comes right before boot, with this machine's callback token.
    block = efi7.split(":arch\n", 1)[1].split("\n\n", 1)[0].splitlines()
    prefix = "imgfetch --name pxetui-callback http://10.99.0.1/callback/"
    assert block[-2].startswith(prefix) and block[-2].endswith("/booting?entry=arch && imgfree pxetui-callback"
                                                               " || echo callback failed")
    grant = tokens.for_config(cfg).verify(block[-2][len(prefix):].split("/")[0], "callback")
    assert grant is not None and (grant.mac, grant.ip) == ("52:54:00:00:00:01", "10.99.0.50")
    assert block[-1].startswith("boot")
    # Claiming the MAC from an address that is not that machine gets no callback at all.
    assert "/callback/" not in ipxe_script(cfg, "52:54:00:00:00:01", 7, "10.99.0.66")
    unknown = ipxe_script(cfg, None, None, None)
    assert "arch=${buildarch}&platform=${platform}" in unknown and "isset ${pxetui-asked}" in unknown
    # a failed fetch is tried once more after a pause before the BIOS menu
    lines = unknown.splitlines()
    assert lines[3].endswith("|| goto retry") and lines[4:7] == [
        ":retry", "echo pxetui: the boot menu did not load, trying again in 3 s", "sleep 3"]
    assert lines[7] == lines[3].replace("goto retry", "goto menu")


def test_seeds_per_entry_and_per_mac(cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("xorriso")
    import_iso(cfg, testiso.build(tmp_path / "srv.iso", testiso.layout("ubuntu-server")), name="srv")
    conn = store.connect(cfg.db_path)
    try:
        assert seeds.set_seed(conn, "user-data", b"#cloud-config\n", entry="srv") == "seed/srv/user-data"
        seeds.set_seed(conn, "user-data", b"#cloud-config\nhostname: one\n", mac="52-54-00-00-00-02")
        with pytest.raises(model.MenuError, match="no menu entry"):
            seeds.set_seed(conn, "x", b"", entry="nope")
    finally:
        conn.close()
    assert seed_file(cfg, None, "srv/user-data") == b"#cloud-config\n"
    assert seed_file(cfg, "52:54:00:00:00:02", "user-data") == b"#cloud-config\nhostname: one\n"
    assert seed_file(cfg, "52:54:00:00:00:03", "user-data") is None
    assert seed_file(cfg, None, "srv/meta-data") == b""  # nocloud-net needs it; empty is valid
    assert seed_file(cfg, "52:54:00:00:00:02", "meta-data") == b""
    assert seed_file(cfg, None, "srv/vendor-data") is None
    provider._STATES.clear()
    res = Resolver(cfg.tftp_root, virtual_providers(cfg))
    # Menus over TFTP name no MAC: they are rendered for the machine behind the address.
    monkeypatch.setattr(attribution.for_config(cfg), "mac_for", {"10.99.0.60": "52:54:00:00:00:02"}.get)
    me = Client(ip="10.99.0.60")
    grub = text(res, "grub/grub.cfg", me)
    # `;` ends a GRUB command: the seed URL must be quoted; it carries the machine's seed token.
    tok = grub.split("s=http://10.99.0.1/seed/", 1)[1].split("/", 1)[0]
    grant = tokens.for_config(cfg).verify(tok, "seed")
    assert grant is not None and grant.mac == "52:54:00:00:00:02"
    assert f"'ds=nocloud-net;s=http://10.99.0.1/seed/{tok}/srv/'" in grub
    assert f"autoinstall ds=nocloud-net;s=http://10.99.0.1/seed/{tok}/srv/" in text(res, "pxelinux.cfg/default", me)
    # For an address we cannot attribute the entry boots without its seed (no shared secret).
    for name in ("grub/grub.cfg", "pxelinux.cfg/default"):
        assert "/seed/" not in text(res, name, Client(ip="10.99.0.61"))
