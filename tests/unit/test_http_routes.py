"""URL -> source: root files, virtual providers, boot.ipxe, callbacks and seeds; who asks is
attributed by address, and callbacks and seeds need their per-boot tokens (docs/SECURITY.md)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pxetui.config import Config
from pxetui.events import Alert, BootCallback, Log
from pxetui.files import Client, Forbidden, NotFound, virtual
from pxetui.http.routes import (
    REPORT_INTERVAL,
    REPORT_SOURCES,
    BadRequest,
    Refusals,
    Router,
    Unavailable,
    arch_code,
)
from pxetui.tokens import Grant


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


VICTIM, OTHER = "52:54:00:aa:bb:cc", "52:54:00:66:66:66"
CB_TOKEN, SEED_TOKEN, ANSWER_TOKEN = "c" * 32, "5" * 32, "a" * 32


class FakeTokens:
    """The token table: one callback, one seed and one answer token, all VICTIM's at 10.0.0.5."""

    def verify(self, token, purpose):
        if (token, purpose) in ((CB_TOKEN, "callback"), (SEED_TOKEN, "seed"), (ANSWER_TOKEN, "answer")):
            return Grant(VICTIM, purpose, "10.0.0.5", 0.0, 1e12)
        return None


@pytest.fixture
def setup(tmp_path: Path):
    root = tmp_path / "http"
    root.mkdir()
    (root / "kernel").write_bytes(b"K" * 10)
    cfg = Config.from_dict({"interface": "eth0", "http": {"root": str(root)}})
    events: list = []
    boot = FakeBoot()
    # 10.0.0.5 is VICTIM on the wire, 10.0.0.66 is OTHER; anything else cannot be attributed.
    wire = {"10.0.0.5": VICTIM, "10.0.0.66": OTHER}
    router = Router(cfg, events.append, boot=boot, attribute=wire.get, check=FakeTokens())
    return router, boot, events, root


def alerts(events: list) -> list[Alert]:
    return [e for e in events if isinstance(e, Alert)]


def test_files_and_virtual_providers(setup):
    router, _, _, _ = setup
    client = router.identify("10.0.0.5", {})
    assert router.route("/kernel", {}, client).source.size == 10
    routed = router.route("/menu.ipxe", {}, client)
    assert routed.source.data == b"menu" and routed.dynamic  # generated per client: never cached
    with pytest.raises(NotFound):
        router.route("/nope", {}, client)
    with pytest.raises(Forbidden):
        router.route("/../etc/passwd", {}, client)


def test_clients_are_attributed_by_address_not_by_query(setup):
    router, _, events, _ = setup
    assert router.identify("10.0.0.5", {}).mac == VICTIM  # no query: the wire says who it is
    # Another host claiming to be VICTIM stays itself (issue 14: no attributing to others).
    assert router.identify("10.0.0.66", {"mac": VICTIM}).mac == OTHER
    # An address nothing vouches for has no MAC, whatever it claims; the claim is logged once.
    assert router.identify("10.20.0.9", {"mac": VICTIM}).mac is None
    assert router.identify("10.20.0.9", {"mac": VICTIM}).mac is None
    logs = [e for e in events if isinstance(e, Log)]
    assert len(logs) == 1 and VICTIM in logs[0].message and logs[0].ip == "10.20.0.9"


def test_boot_ipxe_gets_the_claim_and_the_library_decides(setup):
    router, boot, _, _ = setup
    q = {"mac": "52-54-00-AA-BB-CC", "arch": "x86_64", "platform": "efi"}
    client = router.identify("10.0.0.5", q)
    routed = router.route("/boot.ipxe", q, client)
    assert routed.dynamic and not routed.quiet
    # The library gets the claimed MAC and the address; it mints tokens only for the MAC the
    # address is attributed to (pxetui.tokens.for_request).
    assert boot.calls[-1] == ("ipxe", VICTIM, 7, "10.0.0.5")
    later = router.identify("10.0.0.5", {})
    assert (later.mac, later.arch) == (VICTIM, None)  # the arch is never assumed
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
    assert router.identify("10.20.0.9", {"mac": ""}).mac is None  # ${net0/mac} unset


def test_callback_counts_with_its_token_from_its_machine(setup):
    router, _, events, _ = setup
    q = {"entry": "ubuntu-24.04"}
    routed = router.route(f"/callback/{CB_TOKEN}/booting", q, router.identify("10.0.0.5", q))
    assert routed.quiet and routed.source.data == b"ok\n"
    (ev,) = events
    assert isinstance(ev, BootCallback)
    assert (ev.stage, ev.mac, ev.ip, ev.entry) == ("booting", VICTIM, "10.0.0.5", "ubuntu-24.04")
    with pytest.raises(BadRequest):
        router.route(f"/callback/{CB_TOKEN}/bad stage!", {}, Client(ip="10.0.0.5"))
    with pytest.raises(BadRequest):
        router.route(f"/callback/a/{CB_TOKEN}/booted", {}, Client(ip="10.0.0.5"))
    router.route(f"/callback/{CB_TOKEN}/booting", q, router.identify("10.0.0.5", q), "HEAD")
    assert len(events) == 1  # a HEAD is answered but is not a boot milestone


def test_callback_refusals_mark_nothing_and_alert_once_per_source(setup):
    router, _, events, _ = setup
    victim = {"mac": VICTIM}
    refusals = [
        ("10.0.0.66", "/callback/booted", victim, "untokened:10.0.0.66"),  # the old URL form
        ("10.0.0.66", f"/callback/{'0' * 32}/booted", victim, "badtoken:10.0.0.66"),
        ("10.0.0.66", f"/callback/{SEED_TOKEN}/booted", {}, "badtoken:10.0.0.66"),  # a seed token
        # VICTIM's own token, but from another machine's address, or from one nothing vouches for
        ("10.0.0.66", f"/callback/{CB_TOKEN}/booted", victim, "misattributed:10.0.0.66"),
        ("10.20.0.9", f"/callback/{CB_TOKEN}/booted", victim, "misattributed:10.20.0.9"),
    ]
    for ip, path, q, key in refusals:
        with pytest.raises(Forbidden):
            router.route(path, q, router.identify(ip, q))
        assert alerts(events)[-1].key == key
    assert not [e for e in events if isinstance(e, BootCallback)]
    assert {a.ip for a in alerts(events)} == {"10.0.0.66", "10.20.0.9"}
    # Repeats within the interval are counted, not alerted again.
    n = len(alerts(events))
    for _ in range(50):
        with pytest.raises(Forbidden):
            router.route("/callback/booted", victim, router.identify("10.0.0.66", victim))
    assert len(alerts(events)) == n


def test_refusals_from_many_sources_fold_into_one_alert():
    events: list = []
    now = [0.0]
    r = Refusals(events.append, clock=lambda: now[0])
    for i in range(200):
        r.report("untokened", f"10.9.{i // 250}.{i % 250}", "no token")
    keys = [e.key for e in events]
    assert len(keys) == REPORT_SOURCES + 1 and keys[-1] == "untokened:many"
    r.report("untokened", "10.9.0.0", "no token")
    assert len(events) == REPORT_SOURCES + 1  # still within the interval
    now[0] += REPORT_INTERVAL
    r.report("untokened", "10.9.0.0", "no token")
    assert events[-1].key == "untokened:10.9.0.0" and "1 more" in events[-1].message


def test_seeds_only_with_their_token(setup):
    router, boot, events, _ = setup
    client = Client(ip="10.0.0.66")  # a seed needs only its token (the installer may use another NIC)
    src = router.route(f"/seed/{SEED_TOKEN}/ubuntu/user-data", {}, client).source
    assert src.data == b"#cloud-config\n" and src.name == "seed/ubuntu/user-data"  # no token in events
    assert boot.calls[-1] == ("seed", None, "ubuntu/user-data")
    src = router.route(f"/seed/{SEED_TOKEN}/{VICTIM}/user-data", {}, client).source
    assert boot.calls[-1] == ("seed", VICTIM, "user-data")
    with pytest.raises(NotFound):
        router.route(f"/seed/{SEED_TOKEN}/ubuntu/ks.cfg", {}, client)
    calls = len(boot.calls)
    for path in ["/seed/ubuntu/user-data", f"/seed/{VICTIM}/user-data",  # the old URL forms
                 f"/seed/{'0' * 32}/ubuntu/user-data",
                 f"/seed/{CB_TOKEN}/ubuntu/user-data",  # a callback token
                 f"/seed/{SEED_TOKEN}/{OTHER}/user-data"]:  # VICTIM's token for another's seed
        with pytest.raises(Forbidden):
            router.route(path, {}, Client(ip="10.0.0.7"))
    assert len(boot.calls) == calls  # a refused seed is never read
    assert {a.key for a in alerts(events)} == {"untokened:10.0.0.7", "badtoken:10.0.0.7",
                                               "misattributed:10.0.0.7"}


def test_an_answer_token_serves_only_its_machine_at_its_address(setup):
    """Option 250's token travels in a broadcast OFFER/ACK: any host hears it. It serves the
    answer to the address it was given with, while the wire says that is its machine."""
    router, boot, events, _ = setup
    url = f"/seed/{ANSWER_TOKEN}/{VICTIM}/user-data"
    src = router.route(url, {}, router.identify("10.0.0.5", {})).source
    assert src.data == b"#cloud-config\n" and boot.calls[-1] == ("seed", VICTIM, "user-data")
    calls = len(boot.calls)
    for client in (router.identify("10.0.0.66", {}),  # another machine, its own address
                   Client(ip="10.0.0.5"),  # the address, but the neighbour table disagrees
                   Client(ip="10.0.0.7", mac=VICTIM)):  # another address
        with pytest.raises(Forbidden):
            router.route(url, {}, client)
    assert len(boot.calls) == calls  # a refused answer is never read
    assert {a.key for a in alerts(events)} == {"misattributed:10.0.0.66", "misattributed:10.0.0.5",
                                               "misattributed:10.0.0.7"}


def test_a_failing_library_still_serves_files(tmp_path: Path):
    """The state database unreadable (locked, corrupt): disk files are served, the menus and
    seeds answer 503 naming the database, and the reload's failure is logged."""

    class BrokenBoot:
        def ipxe_script(self, cfg, mac, arch, client_ip):
            raise sqlite3.OperationalError("database disk image is malformed")

        def seed_file(self, cfg, mac, name):
            raise sqlite3.OperationalError("database disk image is malformed")

        def virtual_providers(self, cfg):
            raise sqlite3.OperationalError("database disk image is malformed")

    root = tmp_path / "http"
    root.mkdir()
    (root / "kernel").write_bytes(b"K")
    cfg = Config.from_dict({"interface": "eth0", "http": {"root": str(root)}})
    logs: list = []
    router = Router(cfg, lambda ev: None, log=lambda m, lvl: logs.append((lvl, m)),
                    boot=BrokenBoot(), check=FakeTokens(), attribute=lambda ip: VICTIM)
    assert logs and logs[0][0] == "error" and "malformed" in logs[0][1]
    assert router.route("/kernel", {}, Client()).source.size == 1
    with pytest.raises(Unavailable, match="state database: database disk image is malformed"):
        router.route("/boot.ipxe", {}, Client(ip="10.0.0.5"))
    with pytest.raises(Unavailable, match="seeds unavailable: state database"):
        router.route(f"/seed/{SEED_TOKEN}/{VICTIM}/user-data", {}, Client(ip="10.0.0.5"))


def test_the_default_library_is_the_menu_library(tmp_path: Path):
    from pxetui.library import provider

    cfg = Config.from_dict({"interface": "eth0", "http": {"root": str(tmp_path)}})
    assert Router(cfg, lambda ev: None, check=FakeTokens(), attribute=lambda ip: None).boot is provider


@pytest.mark.parametrize("arch, platform, code", [
    ("7", None, 7), ("0", None, 0), ("i386", "pcbios", 0), ("i386", None, 0), ("x86_64", "efi", 7),
    ("x86_64", None, 7), ("arm64", "efi", 11), ("i386", "efi", 6), ("sparc", None, None),
    (None, None, None), ("99999", None, None),
    # `?arch=%C2%B2`: '²'.isdigit(), int('²') raised (a 500); 5,000 digits: int() raises
    ("\u00b2", None, None), ("\u0667", None, None), pytest.param("7" * 5000, None, None, id="5000-digits"),
])
def test_arch_code(arch, platform, code):
    assert arch_code(arch, platform) == code
