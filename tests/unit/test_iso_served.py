"""An imported ISO served by the real TFTP and HTTP services from an empty root: boot loaders,
generated menus and files straight out of the .iso, fetched by clients in another namespace.
(The QEMU boot of the same content is the lab's end-to-end test.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from netns import require_tool
from services import ServiceProc, base_config

from pxetui.iso.library import import_iso

pytestmark = pytest.mark.root

MEMTEST = "/usr/lib/memtest86+/memtest86+x64.iso"
SERVER = "10.99.0.1"


def extent(iso: str, offset: int, size: int) -> bytes:
    with open(iso, "rb") as fh:
        fh.seek(offset)
        return fh.read(size)


def test_memtest_iso_over_tftp_and_http(netns, tmp_path: Path) -> None:
    require_tool(MEMTEST, package="memtest86+")
    require_tool("curl")
    require_tool("/usr/lib/PXELINUX/pxelinux.0", package="pxelinux")
    tftp_root, http_root = tmp_path / "tftp", tmp_path / "http"
    tftp_root.mkdir()
    http_root.mkdir()
    cfg = base_config(tmp_path, tftp={"root": str(tftp_root)}, http={"root": str(http_root)})
    res = import_iso(cfg, MEMTEST, name="memtest")
    floppy = res.index.files["boot/floppy.img"]
    efi = res.index.files["EFI/BOOT/bootx64.efi"]

    server, client = netns.pair(client_addr="10.99.0.2/24")
    tftp = ServiceProc(server, "tftp", cfg, tmp_path)
    http = ServiceProc(server, "http", cfg, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    try:
        tftp.wait_running()
        http.wait_running()

        def tget(name: str) -> bytes:
            dest = out / name.replace("/", "_")
            client.run("curl", "-sS", "--tftp-blksize", "1408", "-o", str(dest), f"tftp://{SERVER}/{name}")
            return dest.read_bytes()

        def hget(path: str) -> bytes:
            dest = out / ("h_" + path.replace("/", "_").replace("?", "_"))
            r = client.run("curl", "-sS", "-o", str(dest), "-w", "%{http_code}", f"http://{SERVER}/{path}")
            assert r.stdout == "200", (path, r.stdout)
            return dest.read_bytes()

        assert tget("pxelinux.0") == Path("/usr/lib/PXELINUX/pxelinux.0").read_bytes()
        menu = tget("pxelinux.cfg/default").decode()
        assert "LABEL memtest-bios" in menu and "LINUX iso/memtest/boot/floppy.img" in menu
        want = extent(MEMTEST, floppy.offset, floppy.size)
        got = tget("iso/memtest/boot/floppy.img")
        assert hashlib.sha256(got).digest() == hashlib.sha256(want).digest()
        assert "chainloader /iso/memtest/EFI/BOOT/bootx64.efi" in tget("grub/grub.cfg").decode()

        script = hget("boot.ipxe?mac=52:54:00:00:00:07&arch=7").decode()
        assert "kernel http://10.99.0.1/iso/memtest/EFI/BOOT/bootx64.efi" in script
        assert hget("iso/memtest/EFI/BOOT/bootx64.efi") == extent(MEMTEST, efi.offset, efi.size)
        assert len(hget("iso/memtest.iso")) == Path(MEMTEST).stat().st_size
    finally:
        tftp.stop()
        http.stop()
