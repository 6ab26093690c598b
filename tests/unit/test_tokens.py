"""Per-boot tokens (pxetui.tokens): minted per machine and boot, checked by purpose, gone after
the next boot or the TTL (docs/SECURITY.md, "Callbacks and seeds")."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from services import base_config

from pxetui import tokens
from pxetui.config import Config, ConfigError
from pxetui.tokens import KEPT, REUSE_SECONDS, TOKEN_RE, TokenStore

MAC, OTHER = "52:54:00:aa:bb:cc", "52:54:00:66:66:66"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TokenStore:
    return TokenStore(tmp_path / "pxetui.db", ttl=3600, clock=clock)


def test_issue_and_verify(store: TokenStore) -> None:
    t = store.issue(MAC, "callback", "10.0.0.5")
    assert TOKEN_RE.match(t)
    g = store.verify(t, "callback")
    assert g is not None and (g.mac, g.purpose, g.ip) == (MAC, "callback", "10.0.0.5")
    assert g.expires - g.issued == 3600
    # A token is for one purpose: a callback token opens no seed, and the reverse.
    assert store.verify(t, "seed") is None
    s = store.issue(MAC, "seed", "10.0.0.5")
    assert s != t and store.verify(s, "seed") is not None and store.verify(s, "callback") is None
    for bad in ("", "0" * 32, t.upper(), t[:-1], t + "0", "../" + t):
        assert store.verify(bad, "callback") is None
    with pytest.raises(ValueError, match="purpose"):
        store.issue(MAC, "admin", "10.0.0.5")


def test_one_boot_one_token_the_next_boot_replaces_it_once_used(store: TokenStore, clock: Clock) -> None:
    first = store.issue(MAC, "callback", "10.0.0.5")
    # menu.c32 reads the config pxelinux just read: the same boot, the same token.
    clock.now += 2
    assert store.issue(MAC, "callback", "10.0.0.5") == first
    # The next boot renders the menu again later: a new token. The old one ends when the new
    # one is used, not at the render (a render can be forged: see the next test).
    clock.now += REUSE_SECONDS
    second = store.issue(MAC, "callback", "10.0.0.5")
    assert second != first
    assert store.verify(first, "callback") is not None
    assert store.verify(second, "callback") is not None
    assert store.verify(first, "callback") is None and store.verify(second, "callback") is not None
    # A render for the same machine on another address is another boot, however soon.
    clock.now += 1
    third = store.issue(MAC, "callback", "10.0.0.9")
    assert third != second and store.verify(third, "callback") is not None
    assert store.verify(second, "callback") is None
    # Machines do not disturb each other.
    other = store.issue(OTHER, "callback", "10.0.0.66")
    assert store.verify(third, "callback") is not None and store.verify(other, "callback").mac == OTHER
    assert store.verify(third, "callback") is not None


def test_forged_renders_do_not_void_a_machine_s_tokens(store: TokenStore, clock: Clock) -> None:
    """A TFTP read request from the machine's address (one forgeable UDP packet) renders its
    menu and mints: the token the machine really got keeps working until KEPT newer ones were
    minted, unused, or the TTL ends it."""
    real = store.issue(MAC, "seed", "10.0.0.5")
    for _ in range(KEPT - 1):
        clock.now += REUSE_SECONDS
        store.issue(MAC, "seed", "10.0.0.5")
    assert store.verify(real, "seed") is not None
    clock.now += REUSE_SECONDS
    store.issue(MAC, "seed", "10.0.0.5")  # the KEPT-th newer one: the oldest goes
    assert store.verify(real, "seed") is None
    conn = store._connect(create=False)
    assert conn is not None
    assert conn.execute("SELECT count(*) FROM boot_tokens WHERE mac = ?", (MAC,)).fetchone()[0] == KEPT


def test_tokens_expire_and_expired_rows_are_pruned(store: TokenStore, clock: Clock) -> None:
    t = store.issue(MAC, "seed", "10.0.0.5")
    clock.now += 3599
    assert store.verify(t, "seed") is not None  # multi-use within its life (cloud-init asks 3 files)
    assert store.verify(t, "seed") is not None
    clock.now += 1
    assert store.verify(t, "seed") is None
    store.issue(OTHER, "seed", "10.0.0.66")  # any mint prunes what has expired
    conn = store._connect(create=False)
    assert conn is not None
    assert [r[0] for r in conn.execute("SELECT mac FROM boot_tokens")] == [OTHER]


def test_services_share_tokens_through_the_state_database(tmp_path: Path, clock: Clock) -> None:
    """TFTP renders the PXELINUX menu, HTTP checks the callback: two processes, one table."""
    tftp = TokenStore(tmp_path / "pxetui.db", ttl=600, clock=clock)
    http = TokenStore(tmp_path / "pxetui.db", ttl=600, clock=clock)
    assert http.verify("0" * 32, "callback") is None
    t = tftp.issue(MAC, "callback", "10.0.0.5")
    assert http.verify(t, "callback") is not None
    clock.now += 1
    assert http.issue(MAC, "callback", "10.0.0.5") == t  # the same boot, whichever service renders


def test_verify_never_creates_a_database(tmp_path: Path) -> None:
    s = TokenStore(tmp_path / "none" / "pxetui.db", ttl=600)
    assert s.verify("0" * 32, "seed") is None
    assert not (tmp_path / "none").exists()


def test_for_request_mints_only_for_the_attributed_machine(tmp_path: Path, monkeypatch) -> None:
    cfg = base_config(tmp_path)
    wire = {"10.99.0.5": MAC}
    monkeypatch.setattr(tokens.attribution.for_config(cfg), "mac_for", wire.get)
    owner, mint = tokens.for_request(cfg, "10.99.0.5", OTHER)  # claims another machine
    assert owner == MAC and mint is not None
    g = tokens.for_config(cfg).verify(mint("callback"), "callback")
    assert g is not None and (g.mac, g.ip) == (MAC, "10.99.0.5")
    # An address nothing vouches for: the claim picks its menu, but no token is minted.
    assert tokens.for_request(cfg, "10.20.0.9", OTHER) == (OTHER, None)
    assert tokens.for_request(cfg, None, None) == (None, None)


def test_token_ttl_is_checked() -> None:
    with pytest.raises(ConfigError, match="http.token_ttl"):
        Config.from_dict({"interface": "eth0", "http": {"token_ttl": 5}})
    assert Config.from_dict({"interface": "eth0"}).http.token_ttl == 14400


def test_a_database_that_cannot_store_tokens_gives_a_menu_without_them(store: TokenStore, monkeypatch,
                                                                        caplog) -> None:
    def readonly(*args: object) -> str:
        raise sqlite3.OperationalError("attempt to write a readonly database")
    monkeypatch.setattr(store, "_issue", readonly)
    with pytest.raises(tokens.TokenUnavailable, match="readonly"):
        store.issue(MAC, "seed", "10.0.0.5")

    def render(mint: tokens.Mint | None) -> str:
        return "seed=" + (mint("seed") if mint else "none")
    mint = lambda purpose: store.issue(MAC, purpose, "10.0.0.5")  # noqa: E731
    assert tokens.rendered(render, mint) == "seed=none"  # the machine still boots, interactively
    assert "readonly" in caplog.text and "without seeds and callbacks" in caplog.text
    assert tokens.rendered(render, lambda p: "t") == "seed=t"
