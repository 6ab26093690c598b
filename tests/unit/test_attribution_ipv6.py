"""IPv6 source address -> MAC (pxetui.attribution): the neighbour discovery table from a netlink
dump, re-read by the same bounded rules as the ARP table (docs/IPV6.md "TFTP and HTTP")."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from pxetui import attribution
from pxetui.attribution import REREADS_PER_SECOND, Attributor, _parse_neighbours

A = "52:54:00:00:00:0a"


def neigh(dst: str, mac: bytes, state: int, family: int = socket.AF_INET6) -> bytes:
    """One RTM_NEWNEIGH message as the kernel sends it in a dump."""
    def attr(kind: int, value: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(value), kind) + value
        return raw + b"\0" * (-len(raw) % 4)
    addr = socket.inet_pton(family, dst)
    body = struct.pack("=BxxxiHBB", family, 2, state, 0, 1) + attr(1, addr) + attr(2, mac)
    return struct.pack("=IHHII", 16 + len(body), attribution.RTM_NEWNEIGH, 2, 1, 0) + body


DONE = struct.pack("=IHHIIi", 20, attribution.NLMSG_DONE, 2, 1, 0, 0)


def test_dump_keeps_entries_with_a_known_mac() -> None:
    out: dict[str, str] = {}
    mac = bytes.fromhex("5254000000" + "0a")
    data = (neigh("fd99::1001", mac, 0x02)  # REACHABLE
            + neigh("fd99:0:0:0::1002", bytes.fromhex("52540000000b"), 0x04)  # STALE, long form
            + neigh("fd99::1003", mac, 0x01)  # INCOMPLETE: never answered
            + neigh("fd99::1004", mac, 0x20)  # FAILED
            + neigh("fd99::1005", b"\0" * 6, 0x02)  # no MAC
            + neigh("10.0.0.9", mac, 0x02, socket.AF_INET))  # not IPv6
    assert _parse_neighbours(data, out) is False  # no DONE yet: the dump goes on
    assert out == {"fd99::1001": A, "fd99::1002": "52:54:00:00:00:0b"}
    assert _parse_neighbours(DONE, out) is True


def test_malformed_reply_ends_the_read_without_entries() -> None:
    out: dict[str, str] = {}
    assert _parse_neighbours(struct.pack("=IHHII", 9999, attribution.RTM_NEWNEIGH, 2, 1, 0), out) is True
    assert out == {}


def test_real_dump_reads_in_this_namespace() -> None:
    assert isinstance(attribution.read_neighbours6(), dict)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ipv6_peer_attributed_by_the_nd_table_ipv4_by_arp(tmp_path: Path) -> None:
    reads: list[int] = []
    arp = tmp_path / "arp"
    arp.write_text("IP address HW type Flags HW address Mask Device\n"
                   "10.0.0.5 0x1 0x2 52:54:00:00:00:0b * eth0\n")

    def nd() -> dict[str, str]:
        reads.append(1)
        return {"fd99::1001": A}

    at = Attributor(None, str(arp), clock=Clock(), nd6=nd)
    assert at.mac_for("fd99::1001") == A
    assert at.mac_for("10.0.0.5") == "52:54:00:00:00:0b"
    assert at.mac_for("fd99::1002") is None
    assert reads  # the IPv4 lookup did not answer the IPv6 one


def test_flood_of_unknown_ipv6_addresses_rereads_a_bounded_number_of_times(tmp_path: Path) -> None:
    reads: list[int] = []
    clock = Clock()
    at = Attributor(None, str(tmp_path / "arp"), clock=clock, nd6=lambda: reads.append(1) or {})
    for i in range(5 * REREADS_PER_SECOND):
        assert at.mac_for(f"fd99::{i + 0x2000:x}") is None
    assert len(reads) <= REREADS_PER_SECOND + 1


def test_ipv6_lease_of_ours_attributes_and_a_conflict_attributes_nothing(tmp_path: Path) -> None:
    """Our DHCPv6 lease names the MAC (a relayed client is not in the neighbour table); the
    neighbour table naming another MAC for that address means neither is trusted."""
    import time

    from pxetui import store
    from pxetui.dhcp6.leases import LEASES6_DDL

    db = tmp_path / "pxetui.db"
    conn = store.connect(db)
    store.ensure_schema(conn, LEASES6_DDL)
    now = time.time()
    with conn:
        for ip, mac, expires in (("fd99::1001", A, now + 600), ("fd99::1002", A, now - 1),
                                 ("fd99::1003", None, now + 600), ("fd99::1004", A, now + 600)):
            conn.execute("INSERT INTO dhcp6_leases(ip, duid, iaid, mac, expires, state, updated)"
                         " VALUES (?, '0003000152540000000a', 1, ?, ?, 'bound', ?)", (ip, mac, expires, now))
    conn.close()
    at = Attributor(db, str(tmp_path / "arp"), nd6=lambda: {"fd99::1004": "52:54:00:00:00:0b"})
    assert at.mac_for("fd99:0::1001") == A  # any spelling of the address
    assert at.mac_for("fd99::1002") is None  # expired
    assert at.mac_for("fd99::1003") is None  # a lease without a known MAC
    assert at.mac_for("fd99::1004") is None  # the wire says another machine
