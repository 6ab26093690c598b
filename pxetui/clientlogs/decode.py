"""One UDP payload to a log receiver, decoded into log lines: what the `logs` service and a
pcap reader (`pxetui analyze`/`watch`) both call, so both read a datagram the same way."""

from __future__ import annotations

from dataclasses import dataclass

from pxetui.clientlogs import netconsole, syslog
from pxetui.events import ClientLog

SYSLOG, NETCONSOLE = "syslog", "netconsole"


@dataclass(frozen=True)
class LogLine:
    source: str  # syslog | netconsole
    message: str
    facility: int | None = None
    severity: int | None = None
    app: str = ""
    hostname: str = ""
    procid: str = ""
    format: str = ""  # rfc5424 | rfc3164 | netconsole
    truncated: bool = False  # longer than the receiver's max_line_bytes: cut there

    def event(self, service: str, mac: str | None, ip: str, ts: float | None = None) -> ClientLog:
        """The line as the ClientLog event of `mac` (None: unknown) at `ip`; `ts` None: now."""
        ev = ClientLog(service=service, mac=mac, ip=ip, source=self.source, facility=self.facility,
                       severity=self.severity, app=self.app, hostname=self.hostname,
                       message=self.message, format=self.format, truncated=self.truncated)
        if ts is not None:
            ev.ts = ts
        return ev


def truncate(data: bytes, max_bytes: int) -> tuple[bytes, bool]:
    return (data[:max_bytes], True) if len(data) > max_bytes else (data, False)


def decode(source: str, payload: bytes, max_bytes: int = 65535) -> list[LogLine]:
    """The lines of one datagram sent to the syslog or netconsole port. A syslog datagram that
    is not a syslog message raises syslog.SyslogError (a ValueError); netconsole never raises."""
    data, cut = truncate(payload, max_bytes)
    if source == SYSLOG:
        m = syslog.parse(data)
        return [LogLine(source=SYSLOG, message=m.message, facility=m.facility, severity=m.severity,
                        app=m.app, hostname=m.hostname, procid=m.procid, format=m.format, truncated=cut)]
    if source == NETCONSOLE:
        return [LogLine(source=NETCONSOLE, message=c.message, facility=c.facility, severity=c.severity,
                        app="kernel", format="netconsole", truncated=cut)
                for c in netconsole.parse(data)]
    raise ValueError(f"unknown log source {source!r}: expected {SYSLOG} or {NETCONSOLE}")


def source_for(port: int, syslog_port: int, netconsole_port: int) -> str | None:
    """Which receiver a UDP destination port is, for a pcap reader; None: neither."""
    return SYSLOG if port == syslog_port else NETCONSOLE if port == netconsole_port else None
