"""Source address -> MAC (pxetui.attribution): the neighbour table and our leases decide, never
a URL's `?mac=` (docs/SECURITY.md, "Callbacks and seeds")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pxetui import store
from pxetui.attribution import CACHE_SECONDS, REREADS_PER_SECOND, Attributor, read_neighbours
from pxetui.dhcp.leases import LEASES_DDL

ARP_HEADER = "IP address       HW type     Flags       HW address            Mask     Device\n"
A, B, C = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c"


def arp_file(path: Path, *rows: tuple[str, str, str]) -> Path:
    path.write_text(ARP_HEADER + "".join(
        f"{ip:<16} 0x1         {flags:<11} {mac}     *        eth0\n" for ip, flags, mac in rows))
    return path


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A state database with our leases: .5 bound to A, .7 bound to C, .8 expired, .9 declined."""
    path = tmp_path / "pxetui.db"
    conn = store.connect(path)
    store.ensure_schema(conn, LEASES_DDL)
    now = time.time()
    for ip, mac, expires, state in (("10.0.0.5", A, now + 600, "bound"), ("10.20.0.7", C, now + 600, "bound"),
                                    ("10.0.0.8", B, now - 1, "bound"), ("10.0.0.9", "", now + 600, "declined")):
        conn.execute("INSERT INTO dhcp_leases(ip, mac, expires, state, hostname, updated) VALUES (?,?,?,?,?,?)",
                     (ip, mac, expires, state, None, now))
    conn.close()
    return path


def test_neighbour_table_complete_entries_only(tmp_path: Path) -> None:
    arp = arp_file(tmp_path / "arp", ("10.0.0.5", "0x2", A.upper()), ("10.0.0.6", "0x0", "00:00:00:00:00:00"),
                   ("10.0.0.7", "0x6", B), ("10.0.0.8", "junk", C))
    assert read_neighbours(str(arp)) == {"10.0.0.5": A, "10.0.0.7": B}
    assert read_neighbours(str(tmp_path / "missing")) == {}
    assert isinstance(read_neighbours(), dict)  # this namespace's real table reads


def test_wire_and_leases_decide_together(tmp_path: Path, db: Path) -> None:
    arp = arp_file(tmp_path / "arp", ("10.0.0.5", "0x2", A), ("10.0.0.6", "0x2", B), ("10.0.0.9", "0x2", B),
                   ("10.0.0.8", "0x2", A))
    at = Attributor(db, str(arp))
    assert at.mac_for("10.0.0.5") == A  # on our segment, and our lease agrees
    assert at.mac_for("10.0.0.6") == B  # on our segment, not our lease (proxy mode, a static host)
    assert at.mac_for("10.20.0.7") == C  # relayed: only our lease can say
    assert at.mac_for("10.20.0.99") is None  # relayed without a lease of ours
    assert at.mac_for("10.0.0.9") == B  # a declined address is no one's lease
    assert at.mac_for("10.0.0.8") == A  # an expired lease says nothing
    assert at.mac_for(None) is None and at.mac_for("") is None


def test_an_address_used_by_another_machine_is_nobodys(tmp_path: Path, db: Path) -> None:
    # B answers for .5, which we leased to A: neither is believed.
    arp = arp_file(tmp_path / "arp", ("10.0.0.5", "0x2", B))
    assert Attributor(db, str(arp)).mac_for("10.0.0.5") is None


def test_proxy_mode_without_a_lease_table_and_no_database(tmp_path: Path) -> None:
    arp = arp_file(tmp_path / "arp", ("10.0.0.5", "0x2", A))
    empty = tmp_path / "empty.db"
    store.connect(empty).close()  # a state database without the DHCP lease table
    assert Attributor(empty, str(arp)).mac_for("10.0.0.5") == A
    missing = tmp_path / "nothing" / "pxetui.db"
    assert Attributor(missing, str(arp)).mac_for("10.0.0.5") == A
    assert not missing.parent.exists()  # looking never creates a state directory


def test_answers_are_cached_briefly(tmp_path: Path) -> None:
    arp = arp_file(tmp_path / "arp", ("10.0.0.5", "0x2", A))
    clock = Clock()
    at = Attributor(None, str(arp), clock=clock)
    assert at.mac_for("10.0.0.5") == A and at.mac_for("10.0.0.6") is None
    arp_file(arp, ("10.0.0.5", "0x2", B), ("10.0.0.6", "0x2", C))
    assert at.mac_for("10.0.0.5") == A and at.mac_for("10.0.0.6") is None  # cached
    clock.now += CACHE_SECONDS
    assert at.mac_for("10.0.0.5") == B and at.mac_for("10.0.0.6") == C


def test_a_new_neighbour_is_found_at_its_first_request(tmp_path: Path) -> None:
    arp = arp_file(tmp_path / "arp", ("10.0.0.5", "0x2", A))
    clock = Clock()
    at = Attributor(None, str(arp), clock=clock)
    assert at.mac_for("10.0.0.5") == A
    # The kernel made the newcomer's entry while answering its handshake: a miss re-reads.
    arp_file(arp, ("10.0.0.5", "0x2", A), ("10.0.0.6", "0x2", B))
    assert at.mac_for("10.0.0.6") == B


def test_a_flood_of_unknown_addresses_rereads_a_bounded_number_of_times(tmp_path: Path, monkeypatch) -> None:
    import pxetui.attribution as attribution

    arp = arp_file(tmp_path / "arp", ("10.0.0.5", "0x2", A))
    reads = []
    real = attribution.read_neighbours
    monkeypatch.setattr(attribution, "read_neighbours", lambda path: reads.append(1) or real(path))
    clock = Clock()
    at = Attributor(None, str(arp), clock=clock)
    for i in range(3 * REREADS_PER_SECOND):
        clock.now += 0.001
        assert at.mac_for(f"10.1.{i // 250}.{i % 250}") is None
    assert len(reads) == 1 + REREADS_PER_SECOND  # the first read, then the budget; the rest used the last table
    # A miss that could not re-read is not remembered: the address is looked up again later.
    arp_file(arp, ("10.1.1.200", "0x2", C))
    clock.now += 0.8  # the next second: the budget is back
    assert at.mac_for("10.1.1.200") == C
