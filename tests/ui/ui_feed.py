"""A deterministic event feed for UI tests and snapshots: fixed timestamps, no clocks."""

from __future__ import annotations

from typing import Any

T0 = 1_790_000_000.0  # a fixed moment; tests pin TZ=UTC so clocks render the same everywhere


def ev(type_: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "ts": T0 + t, **fields}


def mac(i: int) -> str:
    return f"52:54:00:00:{i // 256:02x}:{i % 256:02x}"


def lab_feed() -> list[dict[str, Any]]:
    """An engine in proxy mode with a few clients at different stages."""
    out = [
        ev("EngineStarted", 0, service="supervisor", interface="eth1", address="10.99.0.1",
           netmask="255.255.255.0", dhcp_mode="proxy", dhcp_mode_reason="another DHCP server answered",
           http_port=80, tftp_root="/srv/pxe/tftp", http_root="/srv/pxe/http", version="0.1"),
        ev("DhcpModeDecided", 0.1, service="dhcp", mode="proxy",
           reason="10.99.0.2 answered the probe", other_server="10.99.0.2"),
    ]
    for i, (name, ports) in enumerate((("dhcp", [67, 4011]), ("tftp", [69]), ("http", [80]),
                                        ("capture", []))):
        out.append(ev("ServiceState", 0.2 + i / 10, service=name, state="running",
                      pid=1000 + i, ports=ports))
    out.append(ev("ForeignDhcpServer", 1, service="capture", server_ip="10.99.0.2",
                  server_mac="52:54:00:aa:bb:cc", offered="10.99.0.50"))
    out.append(ev("Alert", 1.5, service="supervisor", key="loader:uefi64", severity="error",
                  message="UEFI boot loader grubx64.efi is missing from the TFTP root"))
    stages = ("discover", "ack", "bootloader", "kernel", "booted")
    for i in range(5):
        m = mac(i + 1)
        ip = f"10.99.0.{50 + i}"
        out.append(ev("LeaseGranted", 2 + i, service="capture", mac=m, ip=ip, ours=False,
                      server_ip="10.99.0.2", expires=T0 + 3600 + i, hostname=f"host{i}"))
        hist = [{"stage": s, "ts": T0 + 2 + i + j * 3, "detail": f"{s} step"}
                for j, s in enumerate(stages[: (i % 5) + 1])]
        stuck = i == 2
        files = [{"id": f"f{i}", "source": "own", "protocol": "tftp", "path": "pxelinux.0",
                  "kind": "bootloader", "size": 46000, "bytes": 46000, "status": "done"}]
        if stuck:
            files.append({"id": "k", "source": "own", "protocol": "tftp",
                          "path": "iso/debian/live/vmlinuz", "kind": "kernel", "size": 8_000_000,
                          "bytes": 1_500_000, "status": "failed", "reason": "timed out"})
        out.append(ev("ClientUpdate", 3 + i, service="tracker", mac=m, ip=ip,
                      stage=stages[i], stages=hist, firmware="" if i % 2 else "bios",
                      arch=7 if i % 2 else 0, progress=[0.05, 0.15, 0.3, 0.6, 1.0][i],
                      last_event=f"{stages[i]} event",
                      diagnosis="the kernel download stopped at 19%: TFTP timed out" if stuck else "",
                      files=files if i else []))
    out.append(ev("LeaseGranted", 8, service="dhcp", mac=mac(9), ip="10.99.0.120", ours=True,
                  expires=T0 + 3608))
    for i in range(3):
        tid = f"t{i}"
        out.append(ev("TransferStarted", 10 + i, service="tftp" if i < 2 else "http",
                      mac=mac(i + 1), ip=f"10.99.0.{50 + i}", transfer_id=tid,
                      protocol="tftp" if i < 2 else "http",
                      path=["pxelinux.0", "vmlinuz", "initrd.img"][i], size=1_000_000 * (i + 1),
                      options={"blksize": 1468, "windowsize": 4} if i < 2 else {}))
        for k in range(1, 4):
            out.append(ev("TransferProgress", 10 + i + k, service="tftp", transfer_id=tid,
                          protocol="tftp", bytes_done=200_000 * k * (i + 1),
                          size=1_000_000 * (i + 1), rate=200_000.0 * (i + 1), retransmits=i))
    out.append(ev("TransferFinished", 16, service="tftp", transfer_id="t0", protocol="tftp",
                  path="pxelinux.0", bytes_done=1_000_000, seconds=6, rate=166_000.0))
    out.append(ev("Log", 17, service="tftp", level_name="warning", message="slow client"))
    return out


LAB_MAC, LAB_IP = "52:54:00:77:00:10", "10.77.0.10"
# What PXELINUX asks for before `default`: per-MAC, then the hex IP shortened digit by digit
# (docs/FIELD-NOTES.md, "Client fingerprints"); each is answered "file not found".
PXELINUX_LOOKUPS = ["pxelinux.cfg/01-52-54-00-77-00-10",
                    *(f"pxelinux.cfg/{'0A4D000A'[:n]}" for n in range(8, 0, -1))]


def lab_boot_feed() -> list[dict[str, Any]]:
    """`pxetui lab`'s first boot as the engine reports it (a BIOS VM through PXELINUX): the
    config lookups that find nothing, the capture's copy of the initrd transfer whose end it
    never saw, then the booted system's callback."""
    out = [
        ev("EngineStarted", 0, service="supervisor", interface="br0", address="10.77.0.1",
           netmask="255.255.255.0", dhcp_mode="full", dhcp_mode_reason="forced by --dhcp full",
           http_port=80, version="0.1"),
    ]
    for i, (name, ports) in enumerate((("dhcp", [67, 4011]), ("tftp", [69]), ("http", [80]),
                                        ("capture", []))):
        out.append(ev("ServiceState", 0.2 + i / 10, service=name, state="running",
                      pid=2000 + i, ports=ports))
    out.append(ev("LeaseGranted", 7, service="dhcp", mac=LAB_MAC, ip=LAB_IP, expires=T0 + 3607))
    t = 23.0
    n = 0

    def fetch(path: str, size: int | None, seconds: float = 0.01, service: str = "tftp",
              protocol: str = "tftp") -> None:
        nonlocal t, n
        n += 1
        tid = f"x{n}"
        out.append(ev("TransferStarted", t, service=service, mac=LAB_MAC if service == "capture" else None,
                      ip=LAB_IP, transfer_id=tid, protocol=protocol, path=path, size=size,
                      options={"blksize": 1408, "tsize": size} if protocol == "tftp" else {}))
        t += seconds
        if size is not None:
            out.append(ev("TransferFinished", t, service=service, ip=LAB_IP, transfer_id=tid,
                          protocol=protocol, path=path, bytes_done=size, seconds=seconds,
                          rate=size / seconds))

    fetch("pxelinux.0", 42430)
    fetch("ldlinux.c32", 119524, 0.06)
    for path in PXELINUX_LOOKUPS:
        n += 1
        out.append(ev("TransferFailed", t, service="tftp", ip=LAB_IP, transfer_id=f"x{n}",
                      path=path, reason="file not found", status=1))
        t += 0.002
    fetch("pxelinux.cfg/default", 485)
    fetch("menu.c32", 26228)
    fetch("lab/vmlinuz", 8222656, 15.6)
    fetch("lab/initrd.gz", None, service="capture")  # the capture never saw its last ACK
    fetch("lab/initrd.gz", 1238309, 0.9)
    t += 10
    fetch("callback/booted", 3, protocol="http", service="http")
    out.append(ev("ClientUpdate", t, service="tracker", mac=LAB_MAC, ip=LAB_IP, stage="booted",
                  firmware="bios/ipxe", arch=0, progress=1.0, last_event="callback booted",
                  stages=[{"stage": s, "ts": T0 + 7 + i * 3} for i, s in enumerate(
                      ("discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd"))]
                  + [{"stage": "booted", "ts": T0 + t}], boot=1))
    return out
