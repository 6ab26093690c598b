"""Boot answers over IPv6: the IPv4 boot policy's choice as an RFC 5970 boot-file URL.

The decision itself is pxetui.dhcp.policy's (option 61 has option 93's values, RFC 5970
section 3.3); this module only turns its file into a URL the client can use over IPv6 and
says which option-16 vendor class goes with it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from pxetui import archtypes
from pxetui.config import Config
from pxetui.dhcp.policy import BootChoice
from pxetui.dhcp6.codec import ENTERPRISE_PXE, VendorClass


def _v6_host(cfg: Config, url: str) -> str:
    """A URL naming our own IPv4 address names our IPv6 one instead: the client came over
    IPv6 and may have no IPv4 at all (RFC 3986 section 3.2.2: the address in brackets)."""
    parts = urlsplit(url)
    if parts.hostname != cfg.server_ip or not cfg.server_ip:
        return url
    netloc = f"[{cfg.server_ip6}]" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def boot_url(cfg: Config, choice: BootChoice) -> str | None:
    """Option 59 for `choice` (RFC 5970 section 3.1), or None when nothing is to be booted.

    A bare file name is served by TFTP (`tftp://[addr]/file`), or by HTTP for a UEFI HTTP
    boot client (`http://[addr]:port/file`); a URL keeps its scheme, on our IPv6 address when
    it named our IPv4 one (the policy's iPXE script and HTTP boot defaults do)."""
    name = choice.boot_file
    if choice.local or not name:
        return None
    if "://" in name:
        return _v6_host(cfg, name)
    if choice.kind == archtypes.HTTP_KIND:
        return f"{cfg.http_base6}/{name.lstrip('/')}"
    return f"tftp://[{cfg.server_ip6}]/{name.lstrip('/')}"


def vendor_class_echo(choice: BootChoice) -> VendorClass | None:
    """UEFI HTTP boot cancels an answer without option 16 `HTTPClient` under enterprise 343
    (docs/IPV6.md, as OVMF behaves); PXE clients need none."""
    if choice.vendor_class == archtypes.HTTP_CLIENT:
        return VendorClass(ENTERPRISE_PXE, [archtypes.HTTP_CLIENT.encode()])
    return None
