"""The supervisor's cost per event, alone: where `pxetui serve` spends its CPU in a DHCP storm.

    python bench/engine/relay.py [--clients 3000] [--rounds 3] [--profile] [--without log,tracker,ui]

The component figure behind bench/engine/run.py (the engine as deployed, the figure that counts).
The event lines are the real ones: PXE clients (vendor class PXEClient, arch 0) do DISCOVER,
OFFER, REQUEST, ACK against pxetui's DhcpServer in-process, and each packet also goes through
the capture's decoder as the frame the wire would carry, so the stream holds the service's
events and the capture's copies, interleaved as the two pipes deliver them. Each line then goes
the way `pxetui serve` takes it (ServiceRunner.take: decode, rebuild the class, fold into the
state, the tracker, the log line, one attached UI's queue), with the tracker's tick once per
simulated second. No network, no namespaces: nothing leaves this process.

Prints µs per event and per DORA (median of the rounds). With --profile, the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from services import base_config  # noqa: E402

from pxetui import logfile, logfmt  # noqa: E402
from pxetui import store as dbstore  # noqa: E402
from pxetui.capture.decode import Decoder  # noqa: E402
from pxetui.config import Config  # noqa: E402
from pxetui.dhcp import options as o  # noqa: E402
from pxetui.dhcp.codec import Packet, build, parse  # noqa: E402
from pxetui.dhcp.policy import BootPolicy  # noqa: E402
from pxetui.dhcp.server import DhcpServer  # noqa: E402
from pxetui.dhcp.service import open_store  # noqa: E402
from pxetui.events import Event, dumps  # noqa: E402
from pxetui.supervisor import ServiceRunner, Supervisor  # noqa: E402
from pxetui.tracker import Tracker  # noqa: E402

PXE_VC = b"PXEClient:Arch:00000:UNDI:002001"
SERVER_MAC = "02:00:00:00:00:01"
RELAY = "10.99.0.2"  # perfdhcp's role in bench/engine/run.py: a relay agent
BATCH = 64  # lines a supervisor reads from a pipe at once (a full LineReader chunk holds more)
TICK_EVERY = 12000  # lines per tracker tick: one second of a 1,000 DORA/s storm


def frame(payload: bytes, src: str, dst: str, sport: int, dport: int, mac: str) -> bytes:
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=src, dst=dst)
                 / UDP(sport=sport, dport=dport) / payload)


def event_lines(cfg: Config, clients: int) -> list[tuple[str, bytes]]:
    """(service, line) in arrival order for `clients` DORAs, ~1 ms apart."""
    conn = dbstore.connect(cfg.db_path)
    out: list[Event] = []
    server = DhcpServer(cfg, open_store(cfg, conn), BootPolicy(cfg, dbstore.host_overrides(conn)),
                        "full", out.append, lambda mac: None)
    decoder = Decoder(our_ips={cfg.server_ip}, http_ports=[80], progress_for_ours=False)
    decoder.dhcp_served = True  # as deployed: the capture service sees our DHCP service's port bound
    lines: list[tuple[str, bytes]] = []
    t0 = time.time()

    def send(pkt: Packet, ts: float) -> Packet:
        data = build(pkt)
        out.clear()
        replies = server.handle(data, (RELAY, 67), 67)
        server.store.commit()
        wire = decoder.feed(frame(data, RELAY, cfg.server_ip, 67, 67, "02:00:00:00:00:02"), ts)
        reply = replies[0][0]
        wire += decoder.feed(frame(reply, cfg.server_ip, RELAY, 67, 67, SERVER_MAC), ts)
        for ev in out:
            ev.ts = ts
            lines.append(("dhcp", dumps(ev.to_dict())))
        lines.extend(("capture", dumps(ev.to_dict())) for ev in wire)
        return parse(reply)

    for n in range(clients):
        mac = bytes((0x02, 0x11)) + n.to_bytes(4, "big")
        opts = {o.MSG_TYPE: bytes((o.DISCOVER,)), o.VENDOR_CLASS: PXE_VC, o.CLIENT_ARCH: b"\x00\x00"}
        ts = t0 + n / 1000.0
        discover = Packet(xid=n + 1, chaddr=mac, options=opts)
        discover.giaddr = socket.inet_aton(RELAY)
        offer = send(discover, ts)
        request = Packet(xid=n + 1, chaddr=mac, options={
            **opts, o.MSG_TYPE: bytes((o.REQUEST,)), o.SERVER_ID: offer.options[o.SERVER_ID],
            o.REQUESTED_IP: offer.yiaddr})
        request.giaddr = socket.inet_aton(RELAY)
        send(request, ts + 0.0005)
    conn.close()
    return lines


async def one_round(cfg: Config, lines: list[tuple[str, bytes]], tmp: Path, profile: bool,
                    without: set[str]) -> tuple[float, str]:
    log = logfile.RotatingLog(tmp / "engine.log", 50 << 20, 1)
    sup = Supervisor(cfg, names=[], on_event=None if "log" in without else logfmt.Printer(log))
    if "tracker" not in without:
        sup.tracker = Tracker(db_path=tmp / "tracker.db", config=cfg.tracker)
        sup.tracker.coalesce = True  # as Supervisor.start() sets it
    queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
    if "ui" not in without:
        sup.subscribers[queue] = 10**9  # one UI, reading everything
    runners = {"dhcp": ServiceRunner(sup, "dhcp"), "capture": ServiceRunner(sup, "capture")}
    prof = cProfile.Profile() if profile else None
    t = time.process_time()
    if prof:
        prof.enable()
    for start in range(0, len(lines), BATCH):
        for service, line in lines[start:start + BATCH]:
            runners[service].take(line)
        if start % TICK_EVERY < BATCH and sup.tracker:  # the tracker's tick, once a simulated second
            sup._derive(sup.tracker.tick, time.time())
        while not queue.empty():  # the UI's connection writer
            queue.get_nowait()
        await asyncio.sleep(0)  # the loop turns: the log's lines are written
    if sup.tracker:
        sup._derive(sup.tracker.tick, time.time())
    await asyncio.sleep(0)
    log.flush()
    if prof:
        prof.disable()
    spent = time.process_time() - t
    if sup.tracker:
        sup.tracker.close()
    log.close()
    report = ""
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
        report = s.getvalue()
    return spent, report


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--without", default="", help="comma-separated: log, tracker, ui (what each costs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pxetui-relay-") as d:
        tmp = Path(d)
        cfg = base_config(tmp, netmask="255.255.0.0", dhcp={"range": "10.99.1.0-10.99.254.254"})
        cfg.dhcp.limits.new_offers_per_second = 10**6
        lines = event_lines(cfg, args.clients)
        kinds: dict[str, int] = {}
        for service, _ in lines:
            kinds[service] = kinds.get(service, 0) + 1
        print(f"{args.clients} DORAs of PXE clients: {len(lines)} event lines "
              f"({', '.join(f'{k} {v}' for k, v in kinds.items())}), "
              f"{len(lines) / args.clients:.1f} per DORA")
        spent = []
        for r in range(args.rounds):
            rd = tmp / f"round{r}"
            rd.mkdir()
            s, report = asyncio.run(one_round(cfg, lines, rd, args.profile and r == 0,
                                                  set(filter(None, args.without.split(",")))))
            spent.append(s)
            if report:
                print(report)
        med = statistics.median(spent)
        print(f"supervisor CPU: {med * 1e6 / len(lines):.1f} µs per event, "
              f"{med * 1e6 / args.clients:.0f} µs per DORA (median of {args.rounds}); "
              f"one core holds {args.clients / med:.0f} DORA/s of relay alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
