"""Menus and iPXE scripts in the family the client came over (issue 17.2, docs/IPV6.md "TFTP and
HTTP"): an IPv6 client gets only `http://[server_ip6]` URLs and our IPv6 address for
`{server}`, an IPv4 client only IPv4 ones, and without IPv6 configured everyone gets IPv4."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from services import base_config
from test_menu_render import TOKENS, Minter, sample_menu

from pxetui.config import Config
from pxetui.library import provider
from pxetui.menus import render_grub, render_ipxe, render_pxelinux
from pxetui.menus.model import Entry, Menu, addresses, expand, local_entry

V4, V6 = "http://10.99.0.1", "http://[fd99::1]"
URL = re.compile(r"https?://(\[[^\]]*\]|[^/\s:'\"]+)")


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    c = base_config(tmp_path)
    c.ipv6.enabled = True
    c.server_ip6, c.prefix6 = "fd99::1", "fd99::/64"
    return c


def hosts(text: str) -> set[str]:
    return {m.group(1) for m in URL.finditer(text)}


def renders(cfg: Config, ip: str | None) -> list[str]:
    m = sample_menu()
    m.add(Entry(id="lab", label="Lab", kernel="k", args="srv={server} cb={callback}"))
    return [render_pxelinux.render(m, cfg, mint=Minter(), client_ip=ip),
            render_grub.render(m, cfg, mint=Minter(), client_ip=ip),
            render_ipxe.render(m, cfg, "bios", mint=Minter(), client_ip=ip),
            render_ipxe.render(m, cfg, "uefi64", mint=Minter(), client_ip=ip)]


def test_ipv6_client_gets_only_ipv6_urls(cfg: Config) -> None:
    for text in renders(cfg, "fd99::1001"):
        assert hosts(text) == {"[fd99::1]"}, text
        assert "srv=fd99::1 " in text  # {server}: the bare address, as {server} is for IPv4
        assert f"{V6}/callback/{TOKENS['callback']}" in text
        assert f"{V6}/seed/{TOKENS['seed']}/ubuntu-server/" in text


def test_ipv4_client_gets_only_ipv4_urls(cfg: Config) -> None:
    for ip in ("10.99.0.2", "::ffff:10.99.0.2", None):  # a v4-mapped peer is an IPv4 client
        for text in renders(cfg, ip):
            assert hosts(text) == {"10.99.0.1"}, (ip, text)
            assert "srv=10.99.0.1 " in text


def test_without_ipv6_an_ipv6_address_still_gets_ipv4(tmp_path: Path) -> None:
    cfg = base_config(tmp_path)  # ipv6 off: server_ip6 empty
    assert addresses(cfg, "fd99::1001") == (V4, "10.99.0.1")
    assert expand("{http}/x {server}", cfg, client_ip="fd99::1001") == f"{V4}/x 10.99.0.1"


def test_port_is_kept_after_the_brackets(cfg: Config) -> None:
    cfg.http.port = 8080
    assert expand("{http}/k", cfg, client_ip="fd99::1001") == "http://[fd99::1]:8080/k"
    text = render_ipxe.render(Menu(entries=[Entry(id="e", label="E", kernel="k"), local_entry()], default="e"),
                              cfg, "uefi64", client_ip="fd99::1001")
    assert "kernel http://[fd99::1]:8080/k " in text


def test_ipxe_script_chains_back_in_the_clients_family(cfg: Config) -> None:
    """The first script (no arch yet) chains to boot.ipxe again: over the family it came on."""
    v6 = provider.ipxe_script(cfg, None, None, "fd99::1001")
    assert f"chain --replace --autofree {V6}/boot.ipxe?mac=" in v6 and hosts(v6) == {"[fd99::1]"}
    v4 = provider.ipxe_script(cfg, None, None, "10.99.0.2")
    assert f"chain --replace --autofree {V4}/boot.ipxe?mac=" in v4 and hosts(v4) == {"10.99.0.1"}
    menu6 = provider.ipxe_script(cfg, None, 7, "fd99::1001")
    assert menu6.startswith("#!ipxe") and hosts(menu6) <= {"[fd99::1]"}
