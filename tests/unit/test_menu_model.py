"""The menu model: validation, ids, per-firmware defaults, storage in the state dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from services import base_config

from pxetui import store
from pxetui.menus import model
from pxetui.menus.model import Entry, Menu, MenuError, expand


def test_new_menu_has_local_boot_last_and_ids_made_unique() -> None:
    m = Menu()
    a = m.add(Entry(id="live", label="Live", kernel="k"))
    b = m.add(Entry(id="live", label="Live again", kernel="k"))
    assert (a.id, b.id) == ("live", "live-2")
    assert [e.id for e in m.entries] == ["live", "live-2", "local"]
    assert m.unique_id("Weird name/with*chars") == "Weird-name-with-chars"


def test_invalid_entries_are_refused_with_the_field_named() -> None:
    m = Menu()
    with pytest.raises(MenuError, match="linux entry has no kernel"):
        m.add(Entry(id="x", label="X"))
    with pytest.raises(MenuError, match="unknown arch"):
        m.add(Entry(id="y", label="Y", kernel="k", archs=["bios", "sparc"]))
    with pytest.raises(MenuError, match="line break"):
        m.add(Entry(id="z", label="Z", kernel="k", args="a\nDEFAULT evil"))
    with pytest.raises(MenuError, match="cannot be removed"):
        m.remove("local")


def test_check_finds_menu_level_problems() -> None:
    m = Menu(entries=[Entry(id="a", label="A", kernel="k"), Entry(id="a", label="B", kernel="k")],
             default="nope", timeout=99999)
    problems = " | ".join(m.check())
    for part in ("duplicate entry id(s): a", "default: no entry 'nope'", "timeout", "local-disk"):
        assert part in problems


def test_default_for_firmware_that_cannot_boot_it_is_local() -> None:
    m = Menu()
    m.add(Entry(id="bios-only", label="B", kernel="k", archs=["bios"]))
    m.default = "bios-only"
    assert m.default_for("bios") == "bios-only"
    assert m.default_for("uefi64") == "local"
    # Its UEFI sibling (same ISO, same label) stands in for it on UEFI.
    m.entries[0].source_iso = "mt"
    m.add(Entry(id="uefi-twin", label="B", kind="efi", kernel="k.efi", archs=["uefi64"], source_iso="mt"))
    assert m.default_for("uefi64") == "uefi-twin"
    assert m.default_for("arm64") == "local"


def test_templates_are_filled_per_address(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, server_ip="10.1.2.3")
    assert expand("url={http}/x ip={server} keep={other}", cfg) == \
        "url=http://10.1.2.3/x ip=10.1.2.3 keep={other}"
    cfg.http.port = 8080
    assert expand("{http}", cfg) == "http://10.1.2.3:8080"


def test_callback_and_seed_templates_take_the_boot_tokens(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, server_ip="10.1.2.3")
    asked: list[str] = []

    def mint(purpose: str) -> str:
        asked.append(purpose)
        return purpose[0] * 32
    assert expand("cb={callback} s={http}/seed/e/", cfg, mint) == \
        f"cb=http://10.1.2.3/callback/{'c' * 32} s=http://10.1.2.3/seed/{'s' * 32}/e/"
    assert sorted(asked) == ["callback", "seed"]
    # Without a minter (a machine we cannot attribute): no callback URL at all.
    assert expand("cb={callback}", cfg) == "cb="
    e = Entry(id="e", label="E", kernel="k", args="quiet", seed_args="ks={http}/seed/e/ks.cfg", seeded=True)
    assert e.boot_args(cfg) == "quiet"  # seeds only with a token
    assert e.boot_args(cfg, mint) == f"quiet ks=http://10.1.2.3/seed/{'s' * 32}/e/ks.cfg"


def test_seed_args_go_before_the_installer_separator() -> None:
    # d-i copies what follows `---` into the installed system's boot loader: the seed URL (its
    # token) and auto/priority must stay before it. Not seeded: the arguments as they are.
    e = Entry(id="di", label="DI", kernel="debian-installer/amd64/linux", args="console=ttyS0 ---  quiet",
              seed_args="auto=true priority=critical url={http}/seed/di/preseed.cfg")
    assert e.full_args() == "console=ttyS0 ---  quiet"
    e.seeded = True
    assert e.full_args() == ("console=ttyS0 auto=true priority=critical url={http}/seed/di/preseed.cfg"
                             " --- quiet")
    e.args = ""
    assert e.full_args() == e.seed_args


def test_store_round_trip_and_unreadable_menu(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "db")
    try:
        assert [e.id for e in model.load_menu(conn).entries] == ["local"]  # nothing stored yet
        m = Menu(title="T", timeout=3, serial="1 9600")
        m.add(Entry(id="e", label="E", kernel="k", initrds=["i"], args="a={http}", archs=["uefi64"],
                    source_iso="iso", notes="n", seed_args="s", seeded=True))
        m.default = "e"
        model.save_menu(conn, m)
        assert model.load_menu(conn) == m
        assert model.menu_updated(conn) > 0
        bad = Menu(default="missing")
        with pytest.raises(MenuError, match="default"):
            model.save_menu(conn, bad)
        conn.execute("UPDATE menu SET data = 'not json'")
        with pytest.raises(MenuError, match="unreadable"):
            model.load_menu(conn)
    finally:
        conn.close()


def test_a_stored_menu_without_local_entry_gets_one() -> None:
    m = Menu.from_dict({"title": "x", "entries": [{"id": "a", "label": "A", "kernel": "k"}], "default": "a"})
    assert [e.id for e in m.entries] == ["a", "local"]
