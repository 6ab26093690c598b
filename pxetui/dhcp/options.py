"""Option codes and the decoders/encoders the server uses (RFC 2132, 3004, 3046, 4578, PXE 2.1).

Decoders never raise on odd values: a client that sends a strange option still gets served,
with the option treated as absent. Only the framing (codec.parse) can reject a packet.
"""

from __future__ import annotations

import socket
import struct
import uuid as _uuid

from pxetui.dhcp.codec import Packet

# RFC 2132 and friends
SUBNET_MASK = 1
ROUTER = 3
DNS = 6
HOSTNAME = 12
DOMAIN = 15
BROADCAST_ADDR = 28
VENDOR_SPECIFIC = 43  # PXE: encapsulated sub-options (PXE 2.1 spec, table 2-1)
REQUESTED_IP = 50
LEASE_TIME = 51
MSG_TYPE = 53
SERVER_ID = 54
PARAM_REQUEST = 55
MESSAGE = 56
MAX_SIZE = 57
RENEWAL_T1 = 58
REBINDING_T2 = 59
VENDOR_CLASS = 60
CLIENT_ID = 61
TFTP_SERVER = 66
BOOTFILE = 67
USER_CLASS = 77  # RFC 3004
RELAY_AGENT = 82  # RFC 3046
CLIENT_ARCH = 93  # RFC 4578
CLIENT_NDI = 94  # RFC 4578
CLIENT_UUID = 97  # RFC 4578
IPXE_ENCAP = 175  # iPXE's encapsulated options; presence means "this is iPXE"
IPXE_NO_PXEDHCP = 176  # sub-option of 175: 1 = do not wait for proxyDHCP offers
# Proxmox's automated installer: its answer URL (text), and an HTTPS certificate's SHA-256
# fingerprint (251, not sent: our URLs are http://). docs/FIELD-NOTES.md, "Proxmox's answer URL".
PROXMOX_ANSWER_URL = 250

# RFC 2132 9.6 message types
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MSG_NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
             7: "RELEASE", 8: "INFORM"}

# PXE 2.1 option 43 sub-options
PXE_DISCOVERY_CONTROL = 6
PXE_BOOT_SERVERS = 8
PXE_BOOT_MENU = 9
PXE_MENU_PROMPT = 10
PXE_BOOT_ITEM = 71


def msg_type(pkt: Packet) -> int | None:
    v = pkt.options.get(MSG_TYPE)
    return v[0] if v and len(v) == 1 else None


def msg_name(code: int | None) -> str:
    if code is None:
        return "BOOTP"
    return MSG_NAMES.get(code, f"TYPE{code}")


def ip_opt(pkt: Packet, code: int) -> bytes | None:
    v = pkt.options.get(code)
    return v if v is not None and len(v) == 4 else None


def text(pkt: Packet, code: int) -> str | None:
    v = pkt.options.get(code)
    if v is None:
        return None
    return v.rstrip(b"\0").decode("utf-8", "replace")


def arch(pkt: Packet) -> int | None:
    """RFC 4578 2.1: a list of 16-bit types; the first is the one the client runs."""
    v = pkt.options.get(CLIENT_ARCH)
    return struct.unpack_from("!H", v)[0] if v and len(v) >= 2 else None


def ndi(pkt: Packet) -> tuple[int, int, int] | None:
    """RFC 4578 2.2: network interface identifier (type 1 = UNDI, major, minor)."""
    v = pkt.options.get(CLIENT_NDI)
    return (v[0], v[1], v[2]) if v and len(v) == 3 else None


def user_classes(pkt: Packet) -> list[str]:
    """RFC 3004 says length-prefixed instances; iPXE sends a bare `iPXE` (docs/FIELD-NOTES.md).

    Decode as RFC 3004 when the bytes frame exactly, else as one bare string.
    """
    v = pkt.options.get(USER_CLASS)
    if not v:
        return []
    out: list[str] = []
    i = 0
    while i < len(v):
        ln = v[i]
        if ln == 0 or i + 1 + ln > len(v):
            return [v.decode("utf-8", "replace")]
        out.append(v[i + 1 : i + 1 + ln].decode("utf-8", "replace"))
        i += 1 + ln
    return out


def client_uuid(pkt: Packet) -> str | None:
    """RFC 4578 2.3: type 0 then 16 bytes."""
    v = pkt.options.get(CLIENT_UUID)
    if not v or len(v) != 17 or v[0] != 0:
        return None
    return str(_uuid.UUID(bytes=v[1:]))


def suboptions(data: bytes) -> dict[int, bytes]:
    """Decode encapsulated TLV sub-options (43, 82, 175); stops quietly at bad framing."""
    out: dict[int, bytes] = {}
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= n:
            break
        ln = data[i + 1]
        if i + 2 + ln > n:
            break
        out[code] = data[i + 2 : i + 2 + ln]
        i += 2 + ln
    return out


def encode_suboptions(subs: dict[int, bytes], end: bool = False) -> bytes:
    out = bytearray()
    for code, value in subs.items():
        out += bytes((code, len(value)))
        out += value
    if end:
        out.append(255)
    return bytes(out)


def pxe_boot_item(pkt: Packet) -> bytes | None:
    """Option 43 sub-option 71 (type, layer) a BIOS PXE ROM sends in its port-4011 request."""
    v = pkt.options.get(VENDOR_SPECIFIC)
    if not v:
        return None
    item = suboptions(v).get(PXE_BOOT_ITEM)
    return item if item is not None and len(item) == 4 else None


def ip(addr: str) -> bytes:
    return socket.inet_aton(addr)


def ips(addrs: list[str]) -> bytes:
    return b"".join(socket.inet_aton(a) for a in addrs)


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def http_boot_url(url: bytes) -> bytes:
    """Option 67 for a UEFI HTTP boot client: the URL with a terminating NUL.

    EDK2's HttpBootDxe (HttpBootDhcp4.c, HttpBootParseDhcp4Packet) NUL-terminates option 67
    in place: if the option's last byte is not NUL it writes one in the byte AFTER the option,
    i.e. over the next option's code in the offer it caches. That cached offer is the one
    Dhcp4Dxe selects; with the code of the following option (lease time, subnet mask) zeroed
    the rest of the options parse as garbage, the subnet mask is lost, and DhcpLeaseAcquired
    fails on the ACK: Dhcp4Dxe answers DHCPDECLINE ("Lease is denied upon entering bound").
    Ending the option with its own NUL leaves the following options intact (dnsmasq does too).
    """
    return url if url.endswith(b"\0") else url + b"\0"


def text_option(value: str) -> bytes:
    """A text option (RFC 2132 2: at most 255 bytes, no NUL needed); ValueError when longer."""
    raw = value.encode()
    if not raw or len(raw) > 255:
        raise ValueError(f"a DHCP text option holds 1..255 bytes, not {len(raw)}")
    return raw
