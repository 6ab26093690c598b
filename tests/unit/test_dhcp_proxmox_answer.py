"""Proxmox's answer URL (DHCP option 250): who gets it, and that its token is an answer token
bound to the MAC and the address of the reply."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from services import base_config

from pxetui import store as dbstore
from pxetui import tokens
from pxetui.config import Config
from pxetui.dhcp import options as o
from pxetui.dhcp.answer import AnswerUrls
from pxetui.dhcp.codec import Packet, build, parse
from pxetui.dhcp.policy import BootPolicy
from pxetui.dhcp.server import DhcpServer
from pxetui.dhcp.service import open_store
from pxetui.events import Event
from pxetui.menus import model, seeds

MAC = bytes.fromhex("525400bb0001")
MAC_S = "52:54:00:bb:00:01"
PVE = "pve"
ANSWER = b'[global]\nkeyboard = "en-us"\n'
OVMF_VC = b"PXEClient:Arch:00007:UNDI:003000"


class Rig:
    def __init__(self, tmp: Path, mode: str = "full") -> None:
        self.cfg: Config = base_config(tmp)
        self.conn = dbstore.connect(self.cfg.db_path)
        model.update_menu(self.conn, lambda m: m.add(model.Entry(
            id=PVE, label="Proxmox VE 8.2", kernel="iso/pve/boot/linux26",
            initrds=["iso/pve/boot/initrd.img", "/proxmox.iso=iso/pve.iso"], loaders=["ipxe"])))
        model.update_menu(self.conn, lambda m: m.add(model.Entry(
            id="debian", label="Debian", kernel="iso/debian/linux", initrds=["iso/debian/initrd.gz"])))
        self.events: list[Event] = []
        self.server = DhcpServer(self.cfg, open_store(self.cfg, self.conn),
                                 BootPolicy(self.cfg, {}), mode, self.events.append,
                                 answer_url=AnswerUrls(self.cfg, self.conn).url_for)

    def default(self, entry: str) -> None:
        def change(m: model.Menu) -> None:
            m.default = entry
        model.update_menu(self.conn, change)

    def exchange(self, **opts: bytes) -> tuple[Packet, Packet]:
        """DISCOVER then REQUEST: (OFFER, ACK)."""
        def send(msg: int, extra: dict[int, bytes]) -> Packet:
            pkt = Packet(xid=7, chaddr=MAC, options={o.MSG_TYPE: bytes((msg,)), **extra,
                                                     **{int(k[1:]): v for k, v in opts.items()}})
            replies = self.server.handle(build(pkt), ("0.0.0.0", 68), 67)
            self.server.store.commit()
            assert len(replies) == 1, [e for e in self.events if e.type == "DhcpIgnored"]
            return parse(replies[0][0])
        offer = send(o.DISCOVER, {})
        ack = send(o.REQUEST, {o.SERVER_ID: offer.options[o.SERVER_ID], o.REQUESTED_IP: offer.yiaddr})
        return offer, ack


def installer_request() -> dict[str, Any]:
    """What the installer's dhclient sends: no vendor class, no option 93, asks for 250."""
    return {"o55": bytes((1, 3, 6, 15, 250, 251))}


def check_url(rig: Rig, reply: Packet, key: str) -> None:
    url = reply.options[o.PROXMOX_ANSWER_URL].decode()
    prefix = "http://10.99.0.1/seed/"
    assert url.startswith(prefix) and url.endswith(f"/{key}/answer.toml"), url
    token = url[len(prefix):].split("/")[0]
    # Not a plain seed token: the answer token serves only its address (pxetui/http/routes.py)
    assert tokens.for_config(rig.cfg).verify(token, "seed") is None
    grant = tokens.for_config(rig.cfg).verify(token, "answer")
    assert grant is not None and grant.mac == MAC_S
    assert grant.ip == socket.inet_ntoa(reply.yiaddr)


def test_the_installer_of_the_default_proxmox_entry_gets_a_token_url(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.default(PVE)
    seeds.set_seed(rig.conn, "answer.toml", ANSWER, entry=PVE)
    offer, ack = rig.exchange(**installer_request())
    check_url(rig, offer, PVE)
    check_url(rig, ack, PVE)
    # OFFER and ACK of one exchange are one boot: one token
    assert offer.options[o.PROXMOX_ANSWER_URL] == ack.options[o.PROXMOX_ANSWER_URL]


def test_a_per_mac_entry_and_a_per_mac_answer_choose_the_url(tmp_path: Path) -> None:
    rig = Rig(tmp_path)  # the menu default stays `local`
    seeds.set_seed(rig.conn, "answer.toml", ANSWER, entry=PVE)
    _, ack = rig.exchange(**installer_request())
    assert o.PROXMOX_ANSWER_URL not in ack.options  # its entry is the local disk
    dbstore.set_host_override(rig.conn, MAC_S, boot_once=PVE)
    _, ack = rig.exchange(**installer_request())
    check_url(rig, ack, PVE)
    seeds.set_seed(rig.conn, "answer.toml", ANSWER, mac=MAC_S)  # the machine's own wins
    _, ack = rig.exchange(**installer_request())
    check_url(rig, ack, MAC_S)


def test_a_pxe_boot_request_gets_no_answer_url(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.default(PVE)
    seeds.set_seed(rig.conn, "answer.toml", ANSWER, entry=PVE)
    offer, ack = rig.exchange(o60=OVMF_VC, o93=b"\x00\x07", **installer_request())
    assert offer.options.get(o.BOOTFILE)  # it is served as a boot client
    assert o.PROXMOX_ANSWER_URL not in offer.options and o.PROXMOX_ANSWER_URL not in ack.options


def test_no_stored_answer_no_option(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.default(PVE)
    seeds.set_seed(rig.conn, "preseed.cfg", b"d-i x", entry=PVE)  # some other seed only
    _, ack = rig.exchange(**installer_request())
    assert o.PROXMOX_ANSWER_URL not in ack.options


def test_another_entry_gets_no_answer_url(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    seeds.set_seed(rig.conn, "answer.toml", ANSWER, entry=PVE)
    # An answer.toml stored on a non-Proxmox entry is not Proxmox's either.
    seeds.set_seed(rig.conn, "answer.toml", ANSWER, entry="debian")
    rig.default("debian")
    _, ack = rig.exchange(**installer_request())
    assert o.PROXMOX_ANSWER_URL not in ack.options
    # and no seed token was minted for it (the tokens table is made by the first one)
    minted = rig.conn.execute("SELECT count(*) FROM sqlite_master WHERE name='boot_tokens'").fetchone()[0] and \
        rig.conn.execute("SELECT count(*) FROM boot_tokens WHERE purpose='seed'").fetchone()[0]
    assert not minted


def test_proxy_mode_adds_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, mode="proxy")
    rig.default(PVE)
    seeds.set_seed(rig.conn, "answer.toml", ANSWER, entry=PVE)
    pkt = Packet(xid=9, chaddr=MAC, options={o.MSG_TYPE: bytes((o.DISCOVER,)), 55: bytes((1, 250))})
    assert rig.server.handle(build(pkt), ("0.0.0.0", 68), 67) == []  # not a boot client: silent
    # a boot client proxy mode does answer: its boot offer carries no option 250 either
    pxe = Packet(xid=10, chaddr=MAC, options={o.MSG_TYPE: bytes((o.DISCOVER,)), 55: bytes((1, 250)),
                                              o.VENDOR_CLASS: OVMF_VC, o.CLIENT_ARCH: b"\x00\x07"})
    (reply,) = rig.server.handle(build(pxe), ("0.0.0.0", 68), 67)
    assert o.PROXMOX_ANSWER_URL not in parse(reply[0]).options


def test_what_decides_the_url_is_read_again_only_after_a_change(tmp_path: Path, monkeypatch) -> None:
    # Per request, a non-boot client costs no SQL at all: the seeds, overrides and menu are read
    # again after a write on this connection at once, and after another process's write (the
    # lease writer commits all the time) once a RECHECK interval has passed.
    from pxetui.dhcp import answer

    rig = Rig(tmp_path)
    rig.default(PVE)
    seeds.set_seed(rig.conn, "answer.toml", ANSWER, entry=PVE)
    reads, versions = [], []
    real, real_version = answer._Known.read, answer._version
    monkeypatch.setattr(answer._Known, "read", classmethod(lambda cls, conn: reads.append(1) or real(conn)))
    monkeypatch.setattr(answer, "_version", lambda conn: versions.append(1) or real_version(conn))
    now = [100.0]
    urls = answer.AnswerUrls(rig.cfg, rig.conn, mint=lambda mac, ip: "t" * 32, clock=lambda: now[0])
    for _ in range(50):
        assert urls.url_for(MAC_S, "10.99.0.150").endswith(f"/{PVE}/answer.toml")
    assert len(reads) == 1 and len(versions) == 1  # the first read; then no SQL per request
    other = dbstore.connect(rig.cfg.db_path)
    seeds.set_seed(other, "answer.toml", ANSWER, mac=MAC_S)  # another process stores one
    other.close()
    assert urls.url_for(MAC_S, "10.99.0.150").endswith(f"/{PVE}/answer.toml")  # not yet looked
    now[0] += answer.RECHECK
    assert urls.url_for(MAC_S, "10.99.0.150").endswith(f"/{MAC_S}/answer.toml")
    assert len(reads) == 2
    now[0] += answer.RECHECK
    assert urls.url_for(MAC_S, "10.99.0.150") and len(reads) == 2  # looked, nothing changed
    with rig.conn:  # a write on its own connection (as a boot-once spent by the service)
        rig.conn.execute("DELETE FROM menu_seeds WHERE scope = ? AND name = ?", (MAC_S, "answer.toml"))
    assert urls.url_for(MAC_S, "10.99.0.150").endswith(f"/{PVE}/answer.toml") and len(reads) == 3
