"""Dhcp6Server in-process with a fake clock: the RFC 8415 section 18.3 exchanges, leases in
the state database across a restart, boot URLs per architecture and vendor class (RFC 5970),
proxy mode, and what it refuses."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from services import base_config

from pxetui import store as dbstore
from pxetui.config import Config
from pxetui.dhcp.policy import BootPolicy
from pxetui.dhcp6 import codec as c
from pxetui.dhcp6.leases import Key
from pxetui.dhcp6.server import Dhcp6Server, eui64_mac
from pxetui.dhcp6.service import open_store6
from pxetui.events import Event

SERVER_DUID = c.duid_ll("52:54:00:00:00:01")
CLIENT_SRC = ("fe80::5054:ff:feaa:bb01", 546, 0, 2)
PXE_VC = c.VendorClass(343, [b"PXEClient:Arch:00007:UNDI:003016"])
HTTP_VC = c.VendorClass(343, [b"HTTPClient:Arch:00016:UNDI:003001"])


def duid(n: int) -> bytes:
    return bytes.fromhex("0001000100000001525400aabb") + bytes((n,))  # DUID-LLT with a MAC


def msg(t: int, n: int = 1, xid: int = 0x123456, ias: list[c.IaNa] | None = None,
        sid: bytes | None = None, arch: int | None = None, vc: c.VendorClass | None = None,
        oro: list[int] | None = None, rapid: bool = False, user_class: list[bytes] | None = None
        ) -> c.Dhcp6Message:
    m = c.Dhcp6Message(t, xid)
    m.add(c.OPT_CLIENTID, duid(n))
    if sid is not None:
        m.add(c.OPT_SERVERID, sid)
    for ia in ias if ias is not None else [c.IaNa(1)]:
        m.add(c.OPT_IA_NA, c.encode_ia_na(ia))
    if oro:
        m.add(c.OPT_ORO, b"".join(x.to_bytes(2, "big") for x in oro))
    if rapid:
        m.add(c.OPT_RAPID_COMMIT, b"")
    if vc is not None:
        m.add(c.OPT_VENDOR_CLASS, c.encode_vendor_class(vc))
    if user_class:
        m.add(c.OPT_USER_CLASS, c.encode_items(user_class))
    if arch is not None:
        m.add(c.OPT_CLIENT_ARCH_TYPE, arch.to_bytes(2, "big"))
    return m


class Rig:
    def __init__(self, tmp: Path, ipv6: dict[str, Any] | None = None, **sections: Any) -> None:
        self.cfg: Config = base_config(tmp, ipv6={"enabled": True, **(ipv6 or {})}, **sections)
        self.cfg.server_ip6, self.cfg.prefix6 = "fd99::1", "fd99::/64"
        if not self.cfg.ipv6.range:
            self.cfg.ipv6.range = "fd99::1000-fd99::1fff"
        self.conn = dbstore.connect(self.cfg.db_path)
        self.events: list[Event] = []
        self.now = 1_000_000.0
        self.start()

    def start(self) -> None:
        full = self.cfg.ipv6.mode == "full"
        self.store = open_store6(self.cfg, self.conn) if full else None
        self.policy = BootPolicy(self.cfg, dbstore.host_overrides(self.conn),
                                 proxy=self.cfg.ipv6.mode == "proxy")
        self.server = Dhcp6Server(self.cfg, self.store, self.policy, SERVER_DUID, self.events.append,
                                  clock=lambda: self.now)

    def send(self, m: c.Dhcp6Message | bytes, src: tuple[Any, ...] = CLIENT_SRC) -> list[c.Dhcp6Message]:
        data = m if isinstance(m, bytes) else c.encode(m)
        replies = self.server.handle(data, src)
        if self.store is not None:
            self.store.commit()
        for _, dest in replies:
            assert dest == src  # RFC 8415 18.3.10: back to the client's own address and port
        return [c.parse(d) for d, _ in replies]

    def one(self, m: c.Dhcp6Message) -> c.Dhcp6Message:
        out = self.send(m)
        assert len(out) == 1, f"expected one reply, got {len(out)}; ignored: {self.of('DhcpIgnored')}"
        return out[0]

    def of(self, type_: str) -> list[Any]:
        return [e for e in self.events if e.type == type_]

    def bind(self, n: int = 1, **kw: Any) -> c.Dhcp6Message:
        adv = self.one(msg(c.SOLICIT, n, **kw))
        assert adv.msg_type == c.ADVERTISE
        reply = self.one(msg(c.REQUEST, n, sid=SERVER_DUID, ias=adv.ia_na, **kw))
        assert reply.msg_type == c.REPLY
        return reply


def addr(m: c.Dhcp6Message) -> str:
    (ia,) = m.ia_na
    (a,) = ia.addresses
    return a.address


def test_solicit_advertise_request_reply(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    adv = rig.one(msg(c.SOLICIT))
    assert adv.msg_type == c.ADVERTISE and adv.transaction_id == 0x123456
    assert adv.server_id == SERVER_DUID and adv.client_id == duid(1)
    offered = addr(adv)
    assert ipaddress.IPv6Address(offered) in ipaddress.IPv6Network("fd99::/64")
    assert not rig.of("LeaseGranted")  # an Advertise binds nothing
    assert adv.boot_file_url is None  # not a boot client: addresses only
    reply = rig.one(msg(c.REQUEST, sid=SERVER_DUID, ias=adv.ia_na))
    assert reply.msg_type == c.REPLY and addr(reply) == offered
    (ia,) = reply.ia_na
    assert (ia.t1, ia.t2, ia.addresses[0].preferred, ia.addresses[0].valid) == (1800, 2880, 3600, 7200)
    (granted,) = rig.of("LeaseGranted")
    assert (granted.ip, granted.mac, granted.server_ip) == (offered, "52:54:00:aa:bb:01", "fd99::1")
    assert granted.expires == rig.now + 7200
    names = [(e.direction, e.msg_type) for e in rig.of("DhcpPacket")]
    assert names == [("in", "SOLICIT"), ("out", "ADVERTISE"), ("in", "REQUEST"), ("out", "REPLY")]
    assert rig.of("DhcpPacket")[3].yiaddr == offered and rig.of("DhcpPacket")[3].port == 547


def test_rapid_commit_replies_at_once_and_only_when_enabled(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    reply = rig.one(msg(c.SOLICIT, rapid=True))
    assert reply.msg_type == c.REPLY and reply.rapid_commit
    assert [e.ip for e in rig.of("LeaseGranted")] == [addr(reply)]
    off = Rig(tmp_path / "off", ipv6={"rapid_commit": False})
    adv = off.one(msg(c.SOLICIT, rapid=True))
    assert adv.msg_type == c.ADVERTISE and not adv.rapid_commit and not off.of("LeaseGranted")


def test_renew_rebind_extend_and_unknown_ia_gets_nobinding(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    bound = addr(rig.bind())
    rig.now += 1000
    renewed = rig.one(msg(c.RENEW, sid=SERVER_DUID, ias=[c.IaNa(1, 0, 0, [c.IaAddress(bound, 0, 0)])]))
    assert addr(renewed) == bound and rig.of("LeaseGranted")[-1].expires == rig.now + 7200
    rig.now += 1000
    rebound = rig.one(msg(c.REBIND, ias=[c.IaNa(1, 0, 0, [c.IaAddress(bound, 0, 0)])]))
    assert addr(rebound) == bound
    # an IA we have no binding for: NoBinding inside the IA (RFC 8415 18.3.4)
    unknown = rig.one(msg(c.RENEW, 2, sid=SERVER_DUID, ias=[c.IaNa(9, 0, 0, [c.IaAddress("2001:db8::5", 0, 0)])]))
    (ia,) = unknown.ia_na
    assert ia.status is not None and ia.status.code == c.STATUS_NO_BINDING and not ia.addresses


def test_rebind_off_link_gets_zero_lifetimes_and_foreign_on_link_is_silent(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    off = rig.one(msg(c.REBIND, ias=[c.IaNa(1, 0, 0, [c.IaAddress("2001:db8::5", 100, 200)])]))
    (ia,) = off.ia_na
    assert [(a.address, a.preferred, a.valid) for a in ia.addresses] == [("2001:db8::5", 0, 0)]
    # on our link, outside our pool, no binding of ours: another server's client
    assert rig.send(msg(c.REBIND, 2, ias=[c.IaNa(1, 0, 0, [c.IaAddress("fd99::9", 1, 2)])])) == []
    assert "not ours" in rig.of("DhcpIgnored")[-1].reason


def test_release_frees_and_only_for_its_holder(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    bound = addr(rig.bind(1))
    ia = [c.IaNa(1, 0, 0, [c.IaAddress(bound, 0, 0)])]
    thief = rig.one(msg(c.RELEASE, 2, sid=SERVER_DUID, ias=ia))  # same IAID, another DUID
    (tia,) = thief.ia_na
    assert tia.status is not None and tia.status.code == c.STATUS_NO_BINDING
    assert not rig.of("LeaseEnded") and rig.store.binding((duid(1).hex(), 1)) is not None
    done = rig.one(msg(c.RELEASE, 1, sid=SERVER_DUID, ias=ia))
    assert done.status is not None and done.status.code == c.STATUS_SUCCESS
    (ended,) = rig.of("LeaseEnded")
    assert (ended.ip, ended.reason) == (bound, "released")
    assert rig.conn.execute("SELECT count(*) FROM dhcp6_leases").fetchone()[0] == 0


def test_decline_quarantines_only_the_clients_own_address(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ipv6={"range": "fd99::10-fd99::11"})
    first = addr(rig.bind(1))
    other = rig.one(msg(c.DECLINE, 2, sid=SERVER_DUID, ias=[c.IaNa(1, 0, 0, [c.IaAddress(first, 0, 0)])]))
    assert other.ia_na[0].status.code == c.STATUS_NO_BINDING and not rig.of("LeaseEnded")
    rig.one(msg(c.DECLINE, 1, sid=SERVER_DUID, ias=[c.IaNa(1, 0, 0, [c.IaAddress(first, 0, 0)])]))
    assert [(e.ip, e.reason) for e in rig.of("LeaseEnded")] == [(first, "declined")]
    row = rig.conn.execute("SELECT state FROM dhcp6_leases WHERE ip=?", (first,)).fetchone()
    assert row[0] == "declined"
    # the next client gets the other address, never the quarantined one
    assert addr(rig.bind(3)) != first


def test_confirm_on_link_and_not_on_link(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ok = rig.one(msg(c.CONFIRM, ias=[c.IaNa(1, 0, 0, [c.IaAddress("fd99::1234", 0, 0)])]))
    assert ok.status == c.Status(c.STATUS_SUCCESS, "all addresses on link")
    bad = rig.one(msg(c.CONFIRM, ias=[c.IaNa(1, 0, 0, [c.IaAddress("2001:db8::1", 0, 0)])]))
    assert bad.status is not None and bad.status.code == c.STATUS_NOT_ON_LINK
    assert rig.send(msg(c.CONFIRM, ias=[c.IaNa(1)])) == []  # no addresses: no reply


def test_information_request_gets_boot_options_and_no_addresses(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ipv6={"boot_file_params": ["root=tftp", "quiet"]})
    m = msg(c.INFORMATION_REQUEST, ias=[], arch=7, vc=PXE_VC, oro=[59, 60])
    reply = rig.one(m)
    assert reply.msg_type == c.REPLY and reply.ia_na == [] and reply.server_id == SERVER_DUID
    assert reply.boot_file_url is not None and reply.boot_file_url.startswith("tftp://[fd99::1]/")
    assert reply.boot_file_params == ["root=tftp", "quiet"]
    with_ia = msg(c.INFORMATION_REQUEST)  # RFC 8415 16.12: an IA here is invalid
    assert rig.send(with_ia) == [] and "16.12" in rig.of("DhcpIgnored")[-1].reason


def test_pool_exhaustion_gives_noaddrsavail_in_the_ia(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ipv6={"range": "fd99::10-fd99::11"})
    rig.bind(1)
    rig.bind(2)
    adv = rig.one(msg(c.SOLICIT, 3))
    (ia,) = adv.ia_na
    assert not ia.addresses and ia.status is not None and ia.status.code == c.STATUS_NO_ADDRS_AVAIL
    assert rig.of("PoolExhausted")
    # an unanswered Advertise is worth less than a client asking now: client 4 takes 3's offer
    rig2 = Rig(tmp_path / "b", ipv6={"range": "fd99::10-fd99::10"})
    first = addr(rig2.one(msg(c.SOLICIT, 3)))
    assert addr(rig2.one(msg(c.SOLICIT, 4))) == first


def test_leases_survive_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    bound = addr(rig.bind(1))
    rig.start()  # a new store on the same database, as at service start
    assert [lease.address for lease in rig.store.restored(rig.now)] == [bound]
    # the same client asks again: the same address; another client never gets it
    assert addr(rig.one(msg(c.SOLICIT, 1))) == bound
    assert addr(rig.one(msg(c.SOLICIT, 2))) != bound


@pytest.mark.parametrize("kw, url, echo", [
    ({"arch": 7, "vc": PXE_VC}, "tftp://[fd99::1]/", None),
    ({"arch": 16, "vc": HTTP_VC}, "http://[fd99::1]/", b"HTTPClient"),
    ({"oro": [59], "user_class": [b"iPXE"]}, "http://[fd99::1]/boot.ipxe", None),
])
def test_boot_url_per_client_kind(tmp_path: Path, kw: dict[str, Any], url: str, echo: bytes | None) -> None:
    rig = Rig(tmp_path)
    adv = rig.one(msg(c.SOLICIT, **kw))
    assert adv.boot_file_url is not None and adv.boot_file_url.startswith(url), adv.boot_file_url
    vc = adv.vendor_class
    if echo is None:
        assert vc is None
    else:  # docs/IPV6.md: OVMF cancels an HTTP boot answer without this
        assert vc is not None and (vc.enterprise, vc.data) == (343, [echo])
    (decision,) = rig.of("BootDecision")
    assert decision.boot_file == adv.boot_file_url and decision.mac == "52:54:00:aa:bb:01"
    out = rig.of("DhcpPacket")[-1]
    assert out.boot_file == adv.boot_file_url and out.msg_type == "ADVERTISE"


def test_configured_http_url_on_our_ipv4_is_moved_to_ipv6(tmp_path: Path) -> None:
    rig = Rig(tmp_path, http={"port": 8080},
              dhcp={"boot_files": {"http64": "http://10.99.0.1:8080/efi/ipxe.efi",
                                   "uefi64": "grubnetx64.efi"}})
    http = rig.one(msg(c.SOLICIT, 1, arch=16, vc=HTTP_VC))
    assert http.boot_file_url == "http://[fd99::1]:8080/efi/ipxe.efi"
    pxe = rig.one(msg(c.SOLICIT, 2, arch=7, vc=PXE_VC))
    assert pxe.boot_file_url == "tftp://[fd99::1]/grubnetx64.efi"


def test_proxy_mode_boot_url_without_addresses(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ipv6={"mode": "proxy"})
    adv = rig.one(msg(c.SOLICIT, arch=7, vc=PXE_VC, oro=[59]))
    (ia,) = adv.ia_na
    assert not ia.addresses and ia.status is not None and ia.status.code == c.STATUS_NO_ADDRS_AVAIL
    assert adv.boot_file_url is not None and adv.boot_file_url.startswith("tftp://[fd99::1]/")
    assert rig.send(msg(c.SOLICIT, 2)) == []  # not a boot client: the site's server answers it
    assert rig.send(msg(c.RENEW, 1, sid=SERVER_DUID)) == []
    assert not rig.of("LeaseGranted")


def test_server_identifier_must_be_ours(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    adv = rig.one(msg(c.SOLICIT))
    other = c.duid_ll("52:54:00:99:99:99")
    for t in (c.REQUEST, c.RENEW, c.RELEASE, c.DECLINE):
        assert rig.send(msg(t, sid=other, ias=adv.ia_na)) == []
        assert "another server" in rig.of("DhcpIgnored")[-1].reason
    assert rig.send(msg(c.REQUEST, ias=adv.ia_na)) == []  # no server id at all
    assert rig.send(msg(c.SOLICIT, sid=SERVER_DUID)) == []  # a Solicit must carry none
    assert not rig.of("LeaseGranted")


def test_malformed_relay_and_reply_messages_are_named_not_crashes(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert rig.send(b"\x01\x00\x00\x01\x00\x03\x00\x04abcd") == []
    assert "malformed DHCPv6: " in rig.of("DhcpIgnored")[-1].reason
    relay = c.Dhcp6Message(c.RELAY_FORW, link_address="fd99::2", peer_address="fe80::1")
    relay.add(c.OPT_RELAY_MSG, c.encode(msg(c.SOLICIT)))
    assert rig.send(relay) == [] and "relayed" in rig.of("DhcpIgnored")[-1].reason
    assert rig.send(msg(c.ADVERTISE)) == [] and "not a client message" in rig.of("DhcpIgnored")[-1].reason
    assert rig.send(c.Dhcp6Message(c.SOLICIT, 1)) == []  # no client id
    assert "client identifier" in rig.of("DhcpIgnored")[-1].reason
    assert addr(rig.one(msg(c.SOLICIT)))  # and it still serves


def test_rate_limit_per_source_is_one_limit_hit(tmp_path: Path) -> None:
    rig = Rig(tmp_path, dhcp={"limits": {"mac_rate": 1.0, "mac_burst": 3}})
    answered = sum(len(rig.send(msg(c.SOLICIT))) for _ in range(20))
    assert answered == 3
    (hit,) = rig.of("LimitHit")
    assert hit.limit == "dhcp.limits.mac_rate" and hit.ip == CLIENT_SRC[0]


def test_mac_from_duid_else_eui64_link_local(tmp_path: Path) -> None:
    assert eui64_mac("fe80::5054:ff:fe12:3456") == "52:54:00:12:34:56"
    assert eui64_mac("fe80::1") is None and eui64_mac("bogus") is None
    rig = Rig(tmp_path)
    m = c.Dhcp6Message(c.SOLICIT, 7, [(c.OPT_CLIENTID, bytes.fromhex("0004") + bytes(range(16))),
                                      (c.OPT_IA_NA, c.encode_ia_na(c.IaNa(1)))])
    rig.one(m)
    first = rig.of("DhcpPacket")[0]
    assert first.mac == "52:54:00:aa:bb:01"  # from the link-local source (a DUID-UUID has none)
    assert first.uuid == "00010203-0405-0607-0809-0a0b0c0d0e0f"


def _ours(m: c.Dhcp6Message, ias: list[c.IaNa] | None = None) -> c.Dhcp6Message:
    """OVMF's message as if it had chosen us: our server identifier (and our addresses)."""
    opts = [(k, SERVER_DUID if k == c.OPT_SERVERID else v) for k, v in m.options
            if not (ias is not None and k == c.OPT_IA_NA)]
    return c.Dhcp6Message(m.msg_type, m.transaction_id,
                          opts + [(c.OPT_IA_NA, c.encode_ia_na(ia)) for ia in ias or []])


def test_ovmf_capture_replayed_against_us(tmp_path: Path) -> None:
    """The client side of tests/data/ovmf-pxe6.pcapng, sent to our server instead of dnsmasq."""
    from test_dhcp6_codec import dhcp6_payloads

    sent = [c.parse(d) for port, d in dhcp6_payloads() if port == 547]
    solicit1, request1, solicit2, request2, release = sent
    (tmp_path / "grubnetx64.efi").write_bytes(b"x")  # found first of the uefi64 defaults
    rig = Rig(tmp_path, tftp={"root": str(tmp_path)})
    src = ("fe80::5054:ff:fe77:10", 546, 0, 2)
    (plain,) = rig.send(solicit1, src)
    assert plain.boot_file_url is None and addr(plain)  # the firmware's address-only exchange
    (adv,) = rig.send(solicit2, src)
    assert adv.boot_file_url == "tftp://[fd99::1]/grubnetx64.efi" and addr(adv) != addr(plain)
    (reply1,) = rig.send(_ours(request1, plain.ia_na), src)
    (reply2,) = rig.send(_ours(request2, adv.ia_na), src)
    assert (addr(reply1), addr(reply2)) == (addr(plain), addr(adv))
    assert reply2.boot_file_url == adv.boot_file_url and reply1.boot_file_url is None
    assert {e.mac for e in rig.of("LeaseGranted")} == {"52:54:00:77:00:10"}
    (done,) = rig.send(_ours(release, reply1.ia_na), src)
    assert done.status is not None and done.status.code == c.STATUS_SUCCESS
    assert [(e.ip, e.reason) for e in rig.of("LeaseEnded")] == [(addr(plain), "released")]


_OPTS = st.lists(st.tuples(st.sampled_from([1, 2, 3, 6, 8, 13, 14, 15, 16, 59, 60, 61]),
                           st.binary(max_size=40)), max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 13), _OPTS, st.binary(max_size=200))
def test_any_message_is_answered_or_ignored_never_raises(tmp_path: Path, t: int,
                                                         opts: list[tuple[int, bytes]], raw: bytes) -> None:
    rig = FUZZ_RIGS.get(tmp_path)
    if rig is None:  # one server for every example (fuzz, not flood: limits out of the way)
        lim = {"mac_rate": 10000.0, "mac_burst": 100000}
        rig = FUZZ_RIGS[tmp_path] = Rig(tmp_path, dhcp={"limits": lim})
    for data in (c.encode(c.Dhcp6Message(t, 1, opts)), raw):
        before = len(rig.events)
        for reply, _ in rig.server.handle(data, CLIENT_SRC):
            c.parse(reply)  # whatever we send is valid DHCPv6
        assert len(rig.events) > before  # answered or ignored, always with an event saying so


FUZZ_RIGS: dict[Path, Rig] = {}


def test_packets_whose_events_are_not_admitted_are_still_served(tmp_path: Path) -> None:
    # events.packet_rate, as for DHCPv4: over the budget the exchange goes on and the lease
    # is announced; only the DhcpPacket events are not made.
    rig = Rig(tmp_path)
    asked: list[str] = []

    def admit(kind: str, tally: str) -> bool:
        asked.append(tally)
        return False

    rig.server.admit = admit
    reply = rig.bind()
    assert reply.msg_type == c.REPLY
    assert not rig.of("DhcpPacket") and len(rig.of("LeaseGranted")) == 1
    assert asked == ["in.SOLICIT", "out.ADVERTISE", "in.REQUEST", "out.REPLY"]


# -- how much one message, and one client, can take (docs/SECURITY.md) --------------------

def bindings(rig: Rig, n: int) -> list[Key]:
    assert rig.store is not None
    return [k for k in rig.store.by_key if k[0] == duid(n).hex()]


def test_one_message_binds_at_most_two_ias_the_rest_noaddrsavail(tmp_path: Path) -> None:
    # The audit's Solicit: Rapid Commit and 254 IA_NAs bound 254 addresses and drew an 11 kB
    # Reply to its source. Now: 2 IAs served per message, the others answered NoAddrsAvail
    # inside the IA (RFC 8415 18.3.1/18.3.2), and a message listing more than 16 is dropped.
    rig = Rig(tmp_path)
    big = msg(c.SOLICIT, 1, ias=[c.IaNa(i) for i in range(254)], rapid=True)
    assert rig.send(big) == [] and "254 IA_NAs" in rig.of("DhcpIgnored")[-1].reason
    assert rig.store.by_key == {} and not rig.of("LeaseGranted")
    request = msg(c.SOLICIT, 2, ias=[c.IaNa(i) for i in range(16)], rapid=True)
    reply = rig.one(request)
    assert [len(ia.addresses) for ia in reply.ia_na] == [1, 1] + [0] * 14
    assert all(ia.status is not None and ia.status.code == c.STATUS_NO_ADDRS_AVAIL for ia in reply.ia_na[2:])
    assert len(bindings(rig, 2)) == 2 and len(rig.of("LeaseGranted")) == 2
    assert len(c.encode(reply)) < 2 * len(c.encode(request)) < 1000


def test_a_request_with_our_duid_and_no_solicit_binds_two_and_pays(tmp_path: Path) -> None:
    # A Request naming our server DUID needs no Solicit: it is charged as a new client, and
    # serves 2 IAs like any message.
    rig = Rig(tmp_path, dhcp={"limits": {"new_offers_per_second": 1, "new_offers_burst": 3,
                                         "mac_burst": 1000}})
    ias = [c.IaNa(i) for i in range(10)]
    reply = rig.one(msg(c.REQUEST, 1, sid=SERVER_DUID, ias=ias))
    assert sum(1 for ia in reply.ia_na if ia.addresses) == 2 and len(bindings(rig, 1)) == 2
    served = [rig.send(msg(t, n, sid=SERVER_DUID if t != c.REBIND else None,
                           ias=[c.IaNa(1, 0, 0, [c.IaAddress(f"fd99::1{n:03x}", 0, 0)])]))
              for n, t in zip(range(2, 8), [c.REQUEST, c.RENEW, c.REBIND] * 2, strict=True)]
    assert [bool(x) for x in served] == [True, True, False, False, False, False]  # burst 3
    (hit,) = [e for e in rig.of("LimitHit") if e.limit == "dhcp.limits.new_offers_per_second"]
    assert "dropped" in hit.message
    # a Renew or Rebind may take back free addresses it names (a lost database), two at most
    rig.now += 10
    renew = msg(c.RENEW, 9, sid=SERVER_DUID, ias=[c.IaNa(i, 0, 0, [c.IaAddress(f"fd99::18{i:02x}", 0, 0)])
                                                   for i in range(5)])
    out = rig.one(renew)
    assert [len(ia.addresses) for ia in out.ia_na] == [1, 1, 0, 0, 0] and len(bindings(rig, 9)) == 2


def test_a_client_known_to_us_is_not_charged(tmp_path: Path) -> None:
    # OVMF's second exchange (a new IAID from the same DUID, docs/FIELD-NOTES.md) and its
    # renewals go through with the new-client budget spent.
    rig = Rig(tmp_path, dhcp={"limits": {"new_offers_per_second": 1, "new_offers_burst": 1}})
    rig.bind(1)
    assert rig.send(msg(c.SOLICIT, 2)) == []  # a stranger: no token left
    adv = rig.one(msg(c.SOLICIT, 1, ias=[c.IaNa(2)]))
    assert adv.ia_na[0].addresses
    rig.one(msg(c.REQUEST, 1, sid=SERVER_DUID, ias=adv.ia_na))
    assert len(bindings(rig, 1)) == 2


def bind_ia(rig: Rig, n: int, iaid: int) -> str:
    adv = rig.one(msg(c.SOLICIT, n, ias=[c.IaNa(iaid)]))
    return addr(rig.one(msg(c.REQUEST, n, sid=SERVER_DUID, ias=adv.ia_na)))


def test_one_client_holds_at_most_four_ias(tmp_path: Path) -> None:
    # New IAIDs from one DUID (a reboot without Release, or a host asking for address after
    # address): the client's least recently used IA makes room, never another client's.
    rig = Rig(tmp_path, dhcp={"limits": {"mac_burst": 1000}})
    other = addr(rig.bind(2))
    first = bind_ia(rig, 1, 100)
    for iaid in range(101, 110):
        bind_ia(rig, 1, iaid)
    assert sorted(k[1] for k in bindings(rig, 1)) == [106, 107, 108, 109]
    assert rig.store.binding((duid(2).hex(), 1)) is not None and rig.store.holder(
        int(ipaddress.IPv6Address(other)), rig.now) == (duid(2).hex(), 1)
    ended = [e for e in rig.of("LeaseEnded") if e.reason == "replaced"]
    assert len(ended) == 6 and ended[0].ip == first
    assert rig.conn.execute("SELECT count(*) FROM dhcp6_leases WHERE duid=?", (duid(1).hex(),)).fetchone()[0] == 4
    assert [e for e in rig.of("LimitHit") if e.limit == "dhcp6.ias_per_client"]
    # a renewal makes an IA recently used: the next new IAID takes the oldest other one
    rig.one(msg(c.RENEW, 1, sid=SERVER_DUID, ias=[c.IaNa(106)]))
    bind_ia(rig, 1, 110)
    assert sorted(k[1] for k in bindings(rig, 1)) == [106, 108, 109, 110]
    rig.start()  # restored from the database: the same four, still capped
    assert rig.store.knows(duid(1).hex()) and len(rig.store.iaids[duid(1).hex()]) == 4
