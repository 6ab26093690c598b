"""The capture service: watch `cfg.interface`, decode, emit events; optionally write a pcap.

Runs in its own process under the supervisor like the other services. It serves nothing, so
it needs no netns guard; it does need CAP_NET_RAW, and says so (an Alert and a failed start)
rather than showing an empty table. The recording rotates (capture.max_bytes, capture.files),
and one that cannot be written stops with an Alert while the capture goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from pxetui.capture.decode import Decoder
from pxetui.capture.dhcp6wire import SERVER_PORT6
from pxetui.capture.filters import boot_filter
from pxetui.capture.pcap import RotatingPcapWriter, pcap_name
from pxetui.capture.sniffer import CaptureError, RawSniffer
from pxetui.config import Config
from pxetui.dhcp.ports import SERVER_PORT
from pxetui.dhcp.probe import recheck_mac
from pxetui.events import Alert, Event, LimitHit, Log
from pxetui.netinfo import interfaces, udp_port_bound
from pxetui.serviceapi import ServiceContext

TICK_SECONDS = 1.0
UDP6_TABLE = "/proc/net/udp6"


def our_addresses(cfg: Config) -> set[str]:
    """Addresses whose DHCP/TFTP/HTTP answers are ours; empty in watch-only mode."""
    if not cfg.server_ip:
        return set()
    serving = cfg.dhcp.mode != "off" or cfg.tftp.enabled or cfg.http.enabled
    if not serving:
        return set()
    return {cfg.server_ip, cfg.server_ip6} - {""} if cfg.ipv6.enabled else {cfg.server_ip}


def http_ports(cfg: Config) -> list[int]:
    return sorted({80, cfg.http.port})


FAILED_EVERY = 10.0  # seconds between two "could not be decoded" lines


class Capture:
    """Sniffer + decoder + optional pcap writer; `emit` receives every decoded event."""

    def __init__(self, iface: str, our_ips: set[str], ports: list[int], emit: Callable[[Event], None],
                 pcap: str = "", all_boot_traffic: bool = False, own_mac: str | None = None,
                 pcap_max_bytes: int = 100 * 1024 * 1024, pcap_files: int = 5,
                 serves_ipv6: bool = True, log_ports: tuple[int, int] | None = None) -> None:
        # log_ports: `pxetui watch` reads installers' syslog and netconsole off the wire; the
        # engine's capture does not (its logs service receives them, docs/CLIENT-LOGS.md).
        self.sniffer = RawSniffer(iface, boot_filter(ports, log_ports=log_ports or ()))
        # Our DHCPv6 answers leave from the interface's link-local address: our MAC marks them.
        self.decoder = Decoder(our_ips=our_ips, http_ports=ports, progress_for_ours=False,
                               our_macs=[own_mac] if own_mac and our_ips else [], serves_ipv6=serves_ipv6,
                               log_ports=log_ports)
        self.emit = emit
        self._failed_at = float("-inf")  # the last "could not be decoded" said (FAILED_EVERY)
        self.writer: RotatingPcapWriter | None = None
        if pcap:
            try:
                self.writer = RotatingPcapWriter(pcap, pcap_max_bytes, pcap_files)
            except OSError as exc:
                self._unwritable(pcap, exc)
        self.all_boot_traffic = all_boot_traffic
        # Our DHCP service probes for other servers with the interface's own MAC (auto mode),
        # and in full mode from a MAC made up from it (pxetui/dhcp/probe.py): not clients booting.
        self.own_mac = own_mac.lower() if own_mac else None
        self.own_macs = {self.own_mac, recheck_mac(self.own_mac)} if self.own_mac else set()

    def on_frame(self, data: bytes, ts: float) -> None:
        try:
            events = self.decoder.feed(data, ts)
        except Exception as exc:  # noqa: BLE001 - a decoder bug on one forged frame must not end the capture
            self.decoder.undecoded += 1
            now = time.monotonic()
            if now - self._failed_at >= FAILED_EVERY:
                self._failed_at = now
                self.emit(Log(service="capture", level_name="error",
                              message=f"capture: a frame could not be decoded ({exc!r}); counted as "
                                      "undecoded, the capture goes on"))
            return
        if self.writer is not None and (self.all_boot_traffic or _is_dhcp(events)):
            self._record(data, ts)
        for ev in events:
            if ev.mac not in self.own_macs:
                self.emit(ev)

    def _record(self, data: bytes, ts: float) -> None:
        w = self.writer
        assert w is not None
        try:
            if w.write(data, ts):
                oldest = pcap_name(w.path, w.files - 1).name if w.files > 1 else "the previous one"
                self.emit(LimitHit(service="capture", limit="capture.max_bytes", count=w.rotated,
                                   message=f"capture recording {w.path} reached {w.max_bytes} bytes: "
                                           f"a new file started, the oldest kept is {oldest} (capture.files)"))
        except OSError as exc:  # disk full, or a directory the service user cannot write
            self.writer = None
            with contextlib.suppress(OSError):
                w.close()
            self._unwritable(str(w.path), exc)

    def _unwritable(self, path: str, exc: OSError) -> None:
        self.emit(Alert(service="capture", key="capture.pcap", severity="error",
                        message=f"capture.pcap: cannot record to {path}: {exc.strerror or exc}; "
                                "the capture itself goes on"))

    def tick(self) -> None:
        # Our DHCP service up (port 67 bound here) or not (mode off, restarting): the wire's
        # copies of what it reports are left out only while it reports them.
        self.decoder.dhcp_served = bool(self.decoder.our_ips) and udp_port_bound(SERVER_PORT)
        # Likewise our DHCPv6 service on 547 (/proc/net/udp6 lists IPv6 sockets).
        self.decoder.v6.dhcp_served = bool(self.decoder.our_ips) and udp_port_bound(SERVER_PORT6, UDP6_TABLE)
        for ev in self.decoder.tick(time.time()):
            self.emit(ev)

    def close(self) -> None:
        self.sniffer.close()
        if self.writer is not None:
            self.writer.close()


def _is_dhcp(events: list[Event]) -> bool:
    return bool(events) and events[0].type == "DhcpPacket"


async def run(ctx: ServiceContext) -> None:
    cfg = ctx.config
    own = interfaces().get(cfg.interface)
    cap = Capture(cfg.interface, our_addresses(cfg), http_ports(cfg), ctx.emit,
                  pcap=cfg.capture.pcap, all_boot_traffic=cfg.capture.all_boot_traffic,
                  own_mac=own.mac if own else None, pcap_max_bytes=cfg.capture.max_bytes,
                  pcap_files=cfg.capture.files, serves_ipv6=cfg.ipv6.enabled)
    loop = asyncio.get_running_loop()
    try:
        cap.sniffer.attach(loop, cap.on_frame)
    except CaptureError as exc:
        ctx.emit(Alert(service=ctx.name, key="capture", severity="error", message=str(exc)))
        cap.close()
        # The service host reports an OSError as "cannot start: ..." and exits non-zero.
        raise OSError(str(exc)) from exc
    cap.tick()  # whether our DHCP service is up yet, before the first frame
    ctx.ready([])
    if cap.writer is not None:
        ctx.log(f"recording {'boot' if cap.all_boot_traffic else 'DHCP'} traffic to {cap.writer.path}")
    try:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            cap.tick()
            if cap.sniffer.error is not None:
                ctx.emit(Alert(service=ctx.name, key="capture", severity="error",
                               message=str(cap.sniffer.error)))
                raise OSError(str(cap.sniffer.error))  # the supervisor restarts us, with backoff
            _, drops = cap.sniffer.stats()
            if drops:
                ctx.log(f"kernel dropped {drops} captured packets (receive buffer full)", "warning")
    finally:
        cap.sniffer.detach(loop)
        cap.close()
