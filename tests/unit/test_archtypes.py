"""pxetui.archtypes: the one option 93 / 61 table, and what the policy, the menus, the tracker
and the diagnosis read from it."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from pxetui import archtypes
from pxetui.archtypes import ARCHES, boot_kind, client_name, is_uefi, menu_family
from pxetui.config import BOOT_KINDS
from pxetui.dhcp.policy import ClientFacts, client_kind
from pxetui.menus.model import ARCHS
from pxetui.tracker import Tracker


def test_each_code_has_its_own_short_name_except_the_7_9_pair() -> None:
    codes_by_name: dict[str, list[int]] = defaultdict(list)
    for a in ARCHES.values():
        codes_by_name[a.name].append(a.code)
    assert {n: c for n, c in codes_by_name.items() if len(c) > 1} == {"uefi64": [7, 9]}
    assert all(code == a.code for code, a in ARCHES.items())


def test_names_are_short_tokens_and_say_http_when_they_boot_over_http() -> None:
    for a in ARCHES.values():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", a.name), a
        assert len(a.name) <= 12, a  # a table column, at 80 columns
        assert a.http == ("http" in a.name) == ("HTTP" in a.label), a


def test_every_family_has_exactly_one_http_entry() -> None:
    # client_name maps "a PXE code + vendor class HTTPClient" to that one entry.
    families = {a.family for a in ARCHES.values()}
    for family in families:
        assert len([a for a in ARCHES.values() if a.family == family and a.http]) == 1, family


@pytest.mark.parametrize("read", [archtypes.name, archtypes.label, is_uefi, menu_family, boot_kind])
def test_7_and_9_are_the_same_x64_uefi_everywhere(read) -> None:
    # docs/FIELD-NOTES.md "Option 93": RFC 4578 and IANA swapped them until 2016.
    assert read(7) == read(9)


def test_menu_family_and_boot_kind_name_only_kinds_that_exist() -> None:
    for code in [*ARCHES, 42]:
        assert menu_family(code) in (*ARCHS, "unknown")
        assert boot_kind(code) in (*BOOT_KINDS, "unknown")
    assert [menu_family(c) for c in (None, 0, 6, 7, 9, 11, 16, 19, 20, 10, 22, 42)] == [
        "bios", "bios", "uefi32", "uefi64", "uefi64", "arm64", "uefi64", "arm64", "bios",
        "unknown", "unknown", "unknown"]
    assert [boot_kind(c) for c in (0, 6, 7, 11, 16, 19, 10, 27, 42)] == [
        "bios", "uefi32", "uefi64", "arm64", "http64", "http64", "unknown", "unknown", "unknown"]


def test_uefi_is_what_starts_only_efi_loaders() -> None:
    assert [is_uefi(c) for c in (0, 20, 21, 22, None, 42)] == [False] * 6
    assert all(is_uefi(c) for c in (6, 7, 9, 10, 11, 15, 16, 18, 19, 25, 27, 39))


def test_policy_kind_for_a_pxe_client_is_the_tables() -> None:
    for code in [*ARCHES, 42]:
        vc = f"PXEClient:Arch:{code:05d}:UNDI:003000"
        assert client_kind(ClientFacts("52:54:00:00:00:01", code, vc, False)) == boot_kind(code)


def test_client_names() -> None:
    http = "HTTPClient:Arch:00016"
    assert client_name(16, http, False) == client_name(7, http, False) == "http64"
    assert client_name(0, http, False) == "bios-http"
    assert client_name(11, "PXEClient", True) == "arm64/ipxe"
    assert client_name(None, http, False) == "http"
    assert client_name(None, None, True) == "ipxe"
    assert client_name(None, None, False) == ""
    assert (client_name(42, None, False), client_name(42, http, False)) == ("arch42", "arch42-http")
    assert archtypes.label(42) == "arch 42"


def test_the_tracker_names_a_client_from_the_table() -> None:
    for code in (0, 7, 9, 10, 18, 20, 39, 42):
        tr = Tracker()
        mac = "52:54:00:00:00:2a"
        tr.feed({"type": "DhcpPacket", "ts": 1.0, "service": "dhcp", "mac": mac,
                 "msg_type": "DISCOVER", "xid": 1, "direction": "in", "arch": code,
                 "vendor_class": f"PXEClient:Arch:{code:05d}:UNDI:003000"})
        assert tr.clients[mac].update(1.0).firmware == archtypes.name(code)


@pytest.mark.parametrize("buildarch, platform", [
    ("i386", None), ("x86_64", "pcbios"), ("i386", "efi"), ("x86_64", "efi"), ("arm32", "efi"),
    ("arm64", "efi"), ("riscv32", "efi"), ("riscv64", "efi"), ("loong64", "efi")])
def test_ipxe_build_facts_name_a_known_pxe_code(buildarch: str, platform: str | None) -> None:
    # The boot script's `arch=${buildarch}&platform=${platform}` (pxetui/http/routes.py) ends
    # in this table: a code it knows, of the firmware the platform says, not an HTTP one.
    from pxetui.http.routes import arch_code

    a = archtypes.lookup(arch_code(buildarch, platform))
    assert a is not None and not a.http
    assert a.uefi == ((platform or "pcbios") == "efi")
