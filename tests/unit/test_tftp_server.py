"""What the TFTP server answers a request from a source that may be forged (server.py), with
its sockets replaced: nothing is sent on any interface."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from services import base_config

from pxetui.events import Event, TransferFailed
from pxetui.files import Resolver
from pxetui.tftp import server as server_mod
from pxetui.tftp.packets import Error, ErrorCode, parse
from pxetui.tftp.server import TftpServer
from pxetui.tftp.session import Receiver

CLIENT = ("10.99.0.50", 40000)


class FakeSocket:
    """A datagram socket that only records what it was asked to send."""

    sent: list[tuple[bytes, Any]] = []

    def __init__(self, *args: Any) -> None:
        pass

    def __enter__(self) -> FakeSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def setsockopt(self, *args: Any) -> None:
        pass

    def bind(self, addr: Any) -> None:
        pass

    def connect(self, addr: Any) -> None:
        pass

    def setblocking(self, flag: bool) -> None:
        pass

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def send(self, data: bytes) -> int:
        FakeSocket.sent.append((bytes(data), None))
        return len(data)

    def sendto(self, data: bytes, addr: Any) -> int:
        FakeSocket.sent.append((bytes(data), addr))
        return len(data)


class FakeSocketModule:
    """server.py's `socket`, with socket.socket replaced."""

    socket = FakeSocket

    def __getattr__(self, name: str) -> Any:
        return getattr(socket, name)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TftpServer, list[Event]]:
    FakeSocket.sent = []
    monkeypatch.setattr(server_mod, "socket", FakeSocketModule())
    (tmp_path / "tftp").mkdir()
    (tmp_path / "uploads").mkdir()
    cfg = base_config(tmp_path, interface="", tftp={"root": str(tmp_path / "tftp"),
                                                    "uploads_dir": str(tmp_path / "uploads"),
                                                    "oack_timeout": 5, "idle_timeout": 30})
    events: list[Event] = []
    return TftpServer(cfg, Resolver(tmp_path / "tftp"), events.append), events


@pytest.mark.parametrize("pkt", [
    # 53 bytes whose option value repr()s at 4x: the ERROR was 213 bytes (docs/SECURITY.md)
    pytest.param(b"\x00\x01f\x00octet\x00" + b"\x01" * 40 + b"\x00", id="option-without-value"),
    pytest.param(b"\x00\x01f\x00oct" + bytes(range(0xF0, 0x100)) + b"et\x00", id="mode-not-ascii"),
    pytest.param(b"\x00\x01f\x00octet\x00\x00" + b"\x02" * 40 + b"\x00", id="value-without-name"),
])
def test_a_malformed_request_gets_a_short_fixed_error_and_the_detail_goes_to_the_event(served, pkt):
    server, events = served
    server._request(pkt, CLIENT)
    [(data, addr)] = FakeSocket.sent
    err = parse(data)
    assert addr == CLIENT and isinstance(err, Error)
    assert err.code == ErrorCode.ILLEGAL_OPERATION and err.message == "malformed request"
    assert len(data) <= len(pkt)  # nothing to reflect at a forged source
    [ev] = [e for e in events if isinstance(e, TransferFailed)]
    assert ev.reason.startswith("malformed request: ") and "\\x" in ev.reason  # the detail, for the log


def test_an_unsupported_mode_is_not_echoed_on_the_wire(served):
    server, events = served
    pkt = b"\x00\x01f\x00" + b"m" * 300 + b"\x00"
    server._request(pkt, CLIENT)
    [(data, _)] = FakeSocket.sent
    assert parse(data) == Error(ErrorCode.ILLEGAL_OPERATION, "transfer mode not supported")
    [ev] = [e for e in events if isinstance(e, TransferFailed)]
    assert "m" * 300 in ev.reason


def test_a_write_request_never_followed_by_data_gives_its_slot_up_after_oack_timeout(served, monkeypatch):
    # A WRQ from a forged source is never followed by block 1: it held a slot for the idle
    # limit (20-30 s) where a never-acknowledged read holds it for tftp.oack_timeout (5 s).
    server, _ = served
    started: list[Receiver] = []

    class Recorded:
        def __init__(self, server: TftpServer, addr: Any, sock: Any, session: Any, *rest: Any) -> None:
            started.append(session)

        def start(self, now: float, req: Any) -> None:
            pass

    monkeypatch.setattr(server_mod, "Transfer", Recorded)
    server._request(b"\x00\x02upload.bin\x00octet\x00", CLIENT)
    [session] = started
    assert isinstance(session, Receiver)
    assert session.oack_giveup == 5 and session.silence_limit() == 5
