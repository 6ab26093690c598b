"""What a boot file's name says about it: a BIOS or a UEFI loader, an iPXE binary, a root
filesystem.

One answer for the boot policy (never hand iPXE its own binary again), the tracker (which
download is the boot loader) and the diagnosis (a loader for the wrong firmware, an iPXE
chain loop); docs/FIELD-NOTES.md "iPXE detection".
"""

from __future__ import annotations

import re

# PXE network boot programs for BIOS: pxelinux.0, iPXE's .pxe/.kpxe/.kkpxe/.lkrn, Windows'
# wdsnbp.com / pxeboot.n12.
BIOS_LOADER = re.compile(r"(\.0|\.k?k?pxe|\.pxe|\.com|\.n12|\.lkrn)$", re.I)
UEFI_LOADER = re.compile(r"\.efi$", re.I)
PXELINUX_MODULE = re.compile(r"\.c32$", re.I)
# A root filesystem or whole image fetched after the kernel (live squashfs, Alpine's modloop,
# a WinPE .wim, an ISO); live systems copy it into RAM (docs/FIELD-NOTES.md).
ROOTFS = re.compile(r"(\.squashfs|\.sfs|squashfs\.img|\.iso|(^|/)modloop[^/]*|\.wim)$", re.I)
# iPXE builds for x64 UEFI, the x64 UEFI loader pxetui chains to under proxyDHCP and for HTTP
# boot: with its own drivers, or on the firmware's network stack.
UEFI_IPXE = ("ipxe.efi", "snponly.efi")
_IPXE_ONLY = (".kpxe", ".kkpxe", ".kkkpxe", ".lkrn")  # formats only iPXE is built as
_IPXE_STEMS = ("ipxe", "undionly", "snponly")


def basename(path: str) -> str:
    """The file name of a path or URL, lower case, without a query (Windows loaders use
    backslashes: docs/FIELD-NOTES.md)."""
    return path.split("?", 1)[0].replace("\\", "/").rsplit("/", 1)[-1].lower()


def is_loader(path: str) -> bool:
    """A file a firmware or PXELINUX starts (not a menu, kernel or image)."""
    name = basename(path)
    return bool(BIOS_LOADER.search(name) or UEFI_LOADER.search(name) or PXELINUX_MODULE.search(name))


def is_ipxe_binary(path: str) -> bool:
    """iPXE itself (undionly.kpxe, ipxe.efi, snponly-arm64.efi, snp.efi ...), never one of
    its scripts (boot.ipxe, menu.cfg)."""
    name = basename(path)
    if name.endswith(_IPXE_ONLY):
        return True
    stem, _, ext = name.rpartition(".")
    return ext in ("efi", "pxe") and (stem == "snp" or any(s in stem for s in _IPXE_STEMS))


def same_transfer(ip: object, protocol: object, path: object) -> tuple[str, str, str]:
    """What makes capture's copy of a transfer and our service's report of it the same transfer:
    the client's address, the protocol and the served path (the wire shows the name the client
    asked for, our service the one it resolved). The tracker and EngineState both match by it."""
    return str(ip or ""), str(protocol or "tftp"), served_path(str(path or ""))


def served_path(path: str) -> str:
    """A path as the client asked for it or as a menu names it, reduced to the served path:
    no scheme and host, no `{http}`/`{server}` template, no query, no leading slash, lower case
    (Windows loaders use backslashes, GRUB adds a leading slash: docs/FIELD-NOTES.md)."""
    p = path.split("?", 1)[0].replace("\\", "/")
    p = re.sub(r"^(\{(http|server)\}|[a-z][a-z0-9+.-]*://[^/]*)", "", p, flags=re.I)
    return p.lstrip("/").lower()
