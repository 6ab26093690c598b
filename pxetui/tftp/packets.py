"""TFTP packet codec: RFC 1350 (RRQ, WRQ, DATA, ACK, ERROR) and RFC 2347 (options, OACK).

`parse()` never raises anything but `PacketError` on hostile input: a malformed packet is
answered (or ignored) by the caller, and the service keeps serving others. The hot path
(DATA out, ACK in) does not go through these dataclasses: see `session.py`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6

HEADER = struct.Struct("!HH")  # opcode + block number (DATA, ACK) or error code (ERROR)


class ErrorCode(IntEnum):
    """RFC 1350 section 5 plus RFC 2347's option negotiation failure (8)."""

    NOT_DEFINED = 0
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_REFUSED = 8


class PacketError(ValueError):
    """A datagram that is not a well-formed TFTP packet; the message names what is wrong."""


@dataclass(frozen=True)
class Request:
    opcode: int  # RRQ or WRQ
    filename: str  # UTF-8, undecodable bytes kept as surrogate escapes (they reach the fs as-is)
    mode: str  # lower case: octet | netascii | mail
    options: dict[str, str] = field(default_factory=dict)  # names lower case, first one wins
    raw: bytes = field(default=b"", compare=False, repr=False)  # to recognise a resent request


@dataclass(frozen=True)
class Data:
    block: int
    payload: bytes


@dataclass(frozen=True)
class Ack:
    block: int


@dataclass(frozen=True)
class Error:
    code: int
    message: str


@dataclass(frozen=True)
class OAck:
    options: dict[str, str]


Packet = Request | Data | Ack | Error | OAck


def _ascii(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise PacketError(f"{what} is not ASCII: {raw[:40]!r}") from None


def _pairs(fields: list[bytes], what: str) -> dict[str, str]:
    """name\0value\0 pairs (RFC 2347). Padding NULs, sent by some PXE ROMs, are ignored."""
    if len(fields) % 2:
        if fields[-1]:
            raise PacketError(f"{what}: option {fields[-1][:40]!r} has no value")
        fields = fields[:-1]
    out: dict[str, str] = {}
    for i in range(0, len(fields), 2):
        if not fields[i]:
            if fields[i + 1]:
                raise PacketError(f"{what}: value {fields[i + 1][:40]!r} has no option name")
            continue  # padding
        name = _ascii(fields[i], "option name").lower()
        out.setdefault(name, _ascii(fields[i + 1], f"value of option {name!r}"))
    return out


def parse(pkt: bytes) -> Packet:
    if len(pkt) < 4:
        raise PacketError(f"packet of {len(pkt)} bytes is too short")
    opcode = (pkt[0] << 8) | pkt[1]
    if opcode in (RRQ, WRQ):
        body = pkt[2:]
        if not body.endswith(b"\0"):
            raise PacketError("request is not NUL-terminated")
        fields = body[:-1].split(b"\0")
        if len(fields) < 2:
            raise PacketError("request has no transfer mode")
        if not fields[0]:
            raise PacketError("request has an empty file name")
        name = fields[0].decode("utf-8", "surrogateescape")
        mode = _ascii(fields[1], "transfer mode").lower()
        return Request(opcode, name, mode, _pairs(fields[2:], "request"), bytes(pkt))
    if opcode == DATA:
        return Data((pkt[2] << 8) | pkt[3], bytes(pkt[4:]))
    if opcode == ACK:
        return Ack((pkt[2] << 8) | pkt[3])
    if opcode == ERROR:
        msg = pkt[4:].split(b"\0", 1)[0]
        return Error((pkt[2] << 8) | pkt[3], msg.decode("utf-8", "replace"))
    if opcode == OACK:
        body = pkt[2:]
        if not body.endswith(b"\0"):
            raise PacketError("OACK is not NUL-terminated")
        return OAck(_pairs(body[:-1].split(b"\0"), "OACK"))
    raise PacketError(f"unknown opcode {opcode}")


def encode_request(opcode: int, filename: str, mode: str = "octet",
                   options: dict[str, str | int] | None = None) -> bytes:
    parts = [filename.encode("utf-8", "surrogateescape"), mode.encode("ascii")]
    for k, v in (options or {}).items():
        parts += [k.encode("ascii"), str(v).encode("ascii")]
    return struct.pack("!H", opcode) + b"\0".join(parts) + b"\0"


def encode_data(block: int, payload: bytes) -> bytes:
    return HEADER.pack(DATA, block & 0xFFFF) + payload


def encode_ack(block: int) -> bytes:
    return HEADER.pack(ACK, block & 0xFFFF)


def encode_error(code: int, message: str) -> bytes:
    # RFC 1350: netascii message; keep it short so it always fits one datagram.
    return HEADER.pack(ERROR, code) + message.encode("ascii", "replace")[:400] + b"\0"


def encode_oack(options: dict[str, str | int]) -> bytes:
    parts: list[bytes] = []
    for k, v in options.items():
        parts += [k.encode("ascii"), str(v).encode("ascii")]
    return struct.pack("!H", OACK) + b"\0".join(parts) + b"\0"
