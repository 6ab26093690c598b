"""Config lookups: files a boot loader asks for expecting most of them to be missing.

PXELINUX looks for its configuration under `pxelinux.cfg/`, most specific name first: the
client's UUID, `01-<mac>` (ARP hardware type, then the address, dashes between bytes), its IP
address in upper-case hex (`0A4D000A`) shortened one digit at a time, and only then `default`
(docs/FIELD-NOTES.md, "Client fingerprints": about fourteen names before `default`). GRUB's
network boot does the same with `grub.cfg-01-<mac>`, `grub.cfg-<UUID>` and `grub.cfg-<hex IP>`
before `grub.cfg`. A "file not found" for one of those names is how the lookup works, not a
failure. The general names (`default`, `grub.cfg`) are not lookups: without them the loader
has no menu at all.
"""

from __future__ import annotations

import re

_HEX_IP = r"[0-9a-f]{1,8}"
_HW_ADDR = r"[0-9a-f]{2}(?:-[0-9a-f]{2}){6,20}"  # type byte + address (Ethernet: 01 + 6 bytes)
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_LOOKUP = re.compile(
    rf"(?:^|[/\\])(?:pxelinux\.cfg[/\\]|grub\.cfg-)(?:{_HW_ADDR}|{_UUID}|{_HEX_IP})$", re.I)


def is_config_lookup(path: str) -> bool:
    """`path` is one of the per-machine config names PXELINUX or GRUB try before the general one."""
    return bool(_LOOKUP.search(path))


def not_found(reason: str) -> bool:
    """A transfer's failure reason says the file does not exist: TFTP error 1 (RFC 1350) as our
    server and the capture word it, or HTTP 404 ("file not found", pxetui.files.NotFound)."""
    return "not found" in reason.lower()


def expected_miss(path: str, reason: str) -> bool:
    """A failed transfer that is a config lookup finding nothing: normal on every boot."""
    return not_found(reason) and is_config_lookup(path)
