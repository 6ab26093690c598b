"""DHCPv6 wire format (RFC 8415 sections 8, 9 and 21; boot options from RFC 5970).

`parse()` turns any byte string into a `Dhcp6Message` or raises `Dhcp6Error`; nothing else
escapes (hypothesis-fuzzed in tests/unit/test_dhcp6_codec.py). Options stay raw and ordered
(`list[(code, bytes)]`: RFC 8415 section 21 allows repeats, e.g. several IA_NA); `parse()`
checks the contents of every option this module decodes, so the typed accessors below never
raise on a parsed message. `encode()` is the inverse of `parse()`.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

# RFC 8415 section 7.3: message types.
SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY = 1, 2, 3, 4, 5, 6, 7
RELEASE, DECLINE, RECONFIGURE, INFORMATION_REQUEST, RELAY_FORW, RELAY_REPL = 8, 9, 10, 11, 12, 13
MSG_NAMES: dict[int, str] = {
    SOLICIT: "SOLICIT", ADVERTISE: "ADVERTISE", REQUEST: "REQUEST", CONFIRM: "CONFIRM",
    RENEW: "RENEW", REBIND: "REBIND", REPLY: "REPLY", RELEASE: "RELEASE", DECLINE: "DECLINE",
    RECONFIGURE: "RECONFIGURE", INFORMATION_REQUEST: "INFORMATION-REQUEST",
    RELAY_FORW: "RELAY-FORW", RELAY_REPL: "RELAY-REPL",
}
RELAY_TYPES = (RELAY_FORW, RELAY_REPL)
CLIENT_PORT, SERVER_PORT = 546, 547  # RFC 8415 section 7.2
# What a client sends to servers (RFC 8415 section 7.3).
CLIENT_TYPES = frozenset({SOLICIT, REQUEST, CONFIRM, RENEW, REBIND, RELEASE, DECLINE, INFORMATION_REQUEST})

# RFC 8415 section 21 / RFC 5970 section 3: option codes.
OPT_CLIENTID, OPT_SERVERID, OPT_IA_NA, OPT_IA_TA, OPT_IAADDR, OPT_ORO = 1, 2, 3, 4, 5, 6
OPT_PREFERENCE, OPT_ELAPSED_TIME, OPT_RELAY_MSG, OPT_AUTH, OPT_UNICAST = 7, 8, 9, 11, 12
OPT_STATUS_CODE, OPT_RAPID_COMMIT, OPT_USER_CLASS, OPT_VENDOR_CLASS = 13, 14, 15, 16
OPT_VENDOR_OPTS, OPT_INTERFACE_ID, OPT_DNS_SERVERS = 17, 18, 23
OPT_BOOTFILE_URL, OPT_BOOTFILE_PARAM, OPT_CLIENT_ARCH_TYPE, OPT_NII = 59, 60, 61, 62

# RFC 8415 section 21.13: status codes.
STATUS_SUCCESS, STATUS_UNSPEC_FAIL, STATUS_NO_ADDRS_AVAIL = 0, 1, 2
STATUS_NO_BINDING, STATUS_NOT_ON_LINK, STATUS_USE_MULTICAST = 3, 4, 5
STATUS_NAMES = {0: "Success", 1: "UnspecFail", 2: "NoAddrsAvail", 3: "NoBinding",
                4: "NotOnLink", 5: "UseMulticast", 6: "NoPrefixAvail"}

ENTERPRISE_PXE = 343  # Intel's IANA enterprise number, used by PXE/UEFI vendor class (RFC 5970)
DUID_LLT, DUID_EN, DUID_LL, DUID_UUID = 1, 2, 3, 4  # RFC 8415 section 11.1
HWTYPE_ETHERNET = 1
MAX_DUID = 130  # RFC 8415 section 11.1: DUID at most 128 octets plus the 2-octet type

_OPT = struct.Struct("!HH")
_IA = struct.Struct("!III")  # IAID T1 T2 (RFC 8415 section 21.4)
_IAADDR = struct.Struct("!16sII")  # address preferred valid (RFC 8415 section 21.6)
_RELAY = struct.Struct("!BB16s16s")  # msg-type hop-count link peer (RFC 8415 section 9)


class Dhcp6Error(ValueError):
    """The bytes are not a DHCPv6 message; the text says what is wrong with them."""


@dataclass(slots=True)
class Status:
    code: int
    message: str = ""

    @property
    def name(self) -> str:
        return STATUS_NAMES.get(self.code, f"status-{self.code}")


@dataclass(slots=True)
class IaAddress:
    address: str  # compressed IPv6 text
    preferred: int
    valid: int
    status: Status | None = None


@dataclass(slots=True)
class IaNa:
    iaid: int
    t1: int = 0
    t2: int = 0
    addresses: list[IaAddress] = field(default_factory=list)
    status: Status | None = None


@dataclass(slots=True)
class VendorClass:
    enterprise: int
    data: list[bytes] = field(default_factory=list)


def _walk(data: bytes, where: str) -> list[tuple[int, bytes]]:
    """RFC 8415 section 21.1: options are 2-byte code, 2-byte length, value; no padding."""
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(data)
    while i < n:
        if n - i < 4:
            raise Dhcp6Error(f"{where}: {n - i} stray bytes where an option header (4) belongs")
        code, length = _OPT.unpack_from(data, i)
        end = i + 4 + length
        if end > n:
            raise Dhcp6Error(f"{where}: option {code} claims {length} bytes, {n - i - 4} left")
        out.append((code, bytes(data[i + 4 : end])))
        i = end
    return out


def _items(data: bytes, where: str) -> list[bytes]:
    """Length-prefixed opaque items (user class 15, vendor class 16: RFC 8415 21.15/21.16)."""
    out: list[bytes] = []
    i, n = 0, len(data)
    while i < n:
        if n - i < 2:
            raise Dhcp6Error(f"{where}: 1 stray byte where an item length (2) belongs")
        length = int.from_bytes(data[i : i + 2], "big")
        if i + 2 + length > n:
            raise Dhcp6Error(f"{where}: item claims {length} bytes, {n - i - 2} left")
        out.append(bytes(data[i + 2 : i + 2 + length]))
        i += 2 + length
    return out


def _u16s(data: bytes, where: str) -> list[int]:
    if len(data) % 2:
        raise Dhcp6Error(f"{where}: odd length {len(data)}, expected a list of 16-bit codes")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def decode_status(data: bytes) -> Status:
    if len(data) < 2:
        raise Dhcp6Error(f"status code option: {len(data)} bytes, at least 2 expected")
    return Status(int.from_bytes(data[:2], "big"), data[2:].decode("utf-8", "replace"))


def _first_status(opts: list[tuple[int, bytes]]) -> Status | None:
    for code, value in opts:
        if code == OPT_STATUS_CODE:
            return decode_status(value)
    return None


def decode_ia_na(data: bytes) -> IaNa:
    """RFC 8415 section 21.4 (IA_NA) with its 21.6 IAADDR and 21.13 status sub-options."""
    if len(data) < _IA.size:
        raise Dhcp6Error(f"IA_NA option: {len(data)} bytes, at least 12 expected")
    iaid, t1, t2 = _IA.unpack_from(data)
    sub = _walk(data[_IA.size :], f"IA_NA {iaid} options")
    ia = IaNa(iaid, t1, t2, status=_first_status(sub))
    for code, value in sub:
        if code != OPT_IAADDR:
            continue
        if len(value) < _IAADDR.size:
            raise Dhcp6Error(f"IA_NA {iaid}: IAADDR of {len(value)} bytes, at least 24 expected")
        raw, preferred, valid = _IAADDR.unpack_from(value)
        status = _first_status(_walk(value[_IAADDR.size :], f"IA_NA {iaid} IAADDR options"))
        ia.addresses.append(IaAddress(str(ipaddress.IPv6Address(raw)), preferred, valid, status))
    return ia


def encode_ia_na(ia: IaNa) -> bytes:
    out = bytearray(_IA.pack(ia.iaid, ia.t1, ia.t2))
    for addr in ia.addresses:
        inner = _IAADDR.pack(ipaddress.IPv6Address(addr.address).packed, addr.preferred, addr.valid)
        if addr.status is not None:
            inner += option(OPT_STATUS_CODE, encode_status(addr.status))
        out += option(OPT_IAADDR, inner)
    if ia.status is not None:
        out += option(OPT_STATUS_CODE, encode_status(ia.status))
    return bytes(out)


def encode_status(status: Status) -> bytes:
    return status.code.to_bytes(2, "big") + status.message.encode()


def decode_vendor_class(data: bytes) -> VendorClass:
    if len(data) < 4:
        raise Dhcp6Error(f"vendor class option: {len(data)} bytes, at least 4 (enterprise) expected")
    return VendorClass(int.from_bytes(data[:4], "big"), _items(data[4:], "vendor class data"))


def encode_vendor_class(vc: VendorClass) -> bytes:
    return vc.enterprise.to_bytes(4, "big") + encode_items(vc.data)


def encode_items(items: list[bytes]) -> bytes:
    return b"".join(len(i).to_bytes(2, "big") + i for i in items)


def option(code: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError(f"option {code}: {len(value)} bytes exceed the 16-bit length")
    return _OPT.pack(code, len(value)) + value


def _check_option(code: int, value: bytes) -> None:
    """Refuse malformed contents of the options the accessors decode, naming the option."""
    if code in (OPT_CLIENTID, OPT_SERVERID) and not 2 < len(value) <= MAX_DUID:
        name = "client" if code == OPT_CLIENTID else "server"
        raise Dhcp6Error(f"{name} identifier: DUID of {len(value)} bytes, 3..{MAX_DUID} expected")
    elif code == OPT_IA_NA:
        decode_ia_na(value)
    elif code == OPT_ORO:
        _u16s(value, "option request option")
    elif code == OPT_ELAPSED_TIME and len(value) != 2:
        raise Dhcp6Error(f"elapsed time option: {len(value)} bytes, exactly 2 expected")
    elif code == OPT_STATUS_CODE:
        decode_status(value)
    elif code == OPT_RAPID_COMMIT and value:
        raise Dhcp6Error(f"rapid commit option: {len(value)} bytes, it carries none")
    elif code == OPT_USER_CLASS:
        _items(value, "user class")
    elif code == OPT_VENDOR_CLASS:
        decode_vendor_class(value)
    elif code == OPT_BOOTFILE_PARAM:
        _items(value, "boot file parameters")  # RFC 5970 section 3.2
    elif code == OPT_CLIENT_ARCH_TYPE:
        _u16s(value, "client architecture option")  # RFC 5970 section 3.3
    elif code == OPT_PREFERENCE and len(value) != 1:
        raise Dhcp6Error(f"preference option: {len(value)} bytes, exactly 1 expected")


@dataclass(slots=True)
class Dhcp6Message:
    msg_type: int
    transaction_id: int = 0  # 24 bits; 0 for relay messages, which have none
    options: list[tuple[int, bytes]] = field(default_factory=list)
    # Relay-forw/Relay-repl header (RFC 8415 section 9); unused for client/server messages.
    hop_count: int = 0
    link_address: str = "::"
    peer_address: str = "::"

    @property
    def name(self) -> str:
        return MSG_NAMES.get(self.msg_type, f"type-{self.msg_type}")

    @property
    def is_relay(self) -> bool:
        return self.msg_type in RELAY_TYPES

    def get(self, code: int) -> bytes | None:
        for c, value in self.options:
            if c == code:
                return value
        return None

    def get_all(self, code: int) -> list[bytes]:
        return [value for c, value in self.options if c == code]

    def has(self, code: int) -> bool:
        return any(c == code for c, _ in self.options)

    def add(self, code: int, value: bytes) -> Dhcp6Message:
        self.options.append((code, value))
        return self

    @property
    def client_id(self) -> bytes | None:
        return self.get(OPT_CLIENTID)

    @property
    def server_id(self) -> bytes | None:
        return self.get(OPT_SERVERID)

    @property
    def ia_na(self) -> list[IaNa]:
        return [decode_ia_na(v) for v in self.get_all(OPT_IA_NA)]

    @property
    def oro(self) -> list[int]:
        value = self.get(OPT_ORO)
        return _u16s(value, "option request option") if value is not None else []

    @property
    def elapsed(self) -> int | None:
        """Hundredths of a second since the client began this exchange (RFC 8415 21.9)."""
        value = self.get(OPT_ELAPSED_TIME)
        return int.from_bytes(value, "big") if value is not None else None

    @property
    def vendor_class(self) -> VendorClass | None:
        value = self.get(OPT_VENDOR_CLASS)
        return decode_vendor_class(value) if value is not None else None

    @property
    def vendor_class_text(self) -> str:
        """The first vendor class data item as text ("PXEClient:Arch:00007:..."), or ""."""
        vc = self.vendor_class
        return vc.data[0].decode("ascii", "replace") if vc and vc.data else ""

    @property
    def user_class(self) -> list[bytes]:
        value = self.get(OPT_USER_CLASS)
        return _items(value, "user class") if value is not None else []

    @property
    def client_arch(self) -> list[int]:
        value = self.get(OPT_CLIENT_ARCH_TYPE)
        return _u16s(value, "client architecture option") if value is not None else []

    @property
    def boot_file_url(self) -> str | None:
        value = self.get(OPT_BOOTFILE_URL)
        return value.decode("utf-8", "replace") if value is not None else None

    @property
    def boot_file_params(self) -> list[str]:
        value = self.get(OPT_BOOTFILE_PARAM)
        if value is None:
            return []
        return [p.decode("utf-8", "replace") for p in _items(value, "boot file parameters")]

    @property
    def rapid_commit(self) -> bool:
        return self.has(OPT_RAPID_COMMIT)

    @property
    def status(self) -> Status | None:
        return _first_status(self.options)

    def relay_message(self) -> Dhcp6Message | None:
        """The message a relay carries in option 9 (RFC 8415 section 21.10), parsed."""
        value = self.get(OPT_RELAY_MSG)
        return parse(value) if value is not None else None


def parse(data: bytes, _depth: int = 0) -> Dhcp6Message:
    """Parse one UDP payload. Raises Dhcp6Error (only) when it is not valid DHCPv6."""
    n = len(data)
    if n < 4:
        raise Dhcp6Error(f"too short: {n} bytes, a DHCPv6 header is 4")
    msg_type = data[0]
    if msg_type == 0:
        raise Dhcp6Error("message type 0 is reserved (RFC 8415 section 7.3)")
    if msg_type in RELAY_TYPES:
        if n < _RELAY.size:
            raise Dhcp6Error(f"relay message too short: {n} bytes, its header is {_RELAY.size}")
        _, hops, link, peer = _RELAY.unpack_from(data)
        options = _walk(data[_RELAY.size :], MSG_NAMES[msg_type])
        msg = Dhcp6Message(msg_type, 0, options, hops, str(ipaddress.IPv6Address(link)),
                           str(ipaddress.IPv6Address(peer)))
        inner = msg.get(OPT_RELAY_MSG)
        if inner is None:
            raise Dhcp6Error(f"{msg.name} without a relay message option (9)")
        if _depth >= 32:  # RFC 8415 section 7.6: HOP_COUNT_LIMIT is 8; refuse deep nesting
            raise Dhcp6Error("relay messages nested deeper than 32")
        try:
            parse(inner, _depth + 1)
        except Dhcp6Error as err:
            raise Dhcp6Error(f"{msg.name} relay message: {err}") from None
    else:
        options = _walk(data[4:], MSG_NAMES.get(msg_type, f"type-{msg_type}"))
        msg = Dhcp6Message(msg_type, int.from_bytes(data[1:4], "big"), options)
    for code, value in options:
        _check_option(code, value)
    return msg


def encode(msg: Dhcp6Message) -> bytes:
    """Serialise a message (options in list order). Bad field values raise ValueError."""
    if not 0 < msg.msg_type < 256:
        raise ValueError(f"message type {msg.msg_type} does not fit a byte")
    if msg.is_relay:
        out = bytearray(_RELAY.pack(msg.msg_type, msg.hop_count,
                                    ipaddress.IPv6Address(msg.link_address).packed,
                                    ipaddress.IPv6Address(msg.peer_address).packed))
    else:
        if not 0 <= msg.transaction_id < 1 << 24:
            raise ValueError(f"transaction id {msg.transaction_id} does not fit 24 bits")
        out = bytearray(bytes((msg.msg_type,)) + msg.transaction_id.to_bytes(3, "big"))
    for code, value in msg.options:
        out += option(code, value)
    return bytes(out)


def duid_mac(duid: bytes | None) -> str | None:
    """The Ethernet MAC inside a DUID-LLT (type 1) or DUID-LL (type 3), RFC 8415 11.2/11.4."""
    if not duid or len(duid) < 4:
        return None
    kind, hwtype = int.from_bytes(duid[:2], "big"), int.from_bytes(duid[2:4], "big")
    if hwtype != HWTYPE_ETHERNET:
        return None
    if kind == DUID_LLT and len(duid) == 14:
        return duid[8:14].hex(":")
    if kind == DUID_LL and len(duid) == 10:
        return duid[4:10].hex(":")
    return None


def duid_ll(mac: str) -> bytes:
    """A DUID-LL (RFC 8415 section 11.4) for an Ethernet MAC "aa:bb:..."."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"{mac!r} is not a 6-byte Ethernet MAC")
    return struct.pack("!HH", DUID_LL, HWTYPE_ETHERNET) + raw
