"""One capture backend for a fixed time; prints a JSON line with what it saw and its CPU.

python bench/capture/worker.py raw|scapy IFACE SECONDS XID_BASE
Runs the service's pipeline: filter -> frames -> Decoder. DISCOVERs whose xid is at or above
XID_BASE are the bench's own, so the orchestrator can count what was lost.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import threading
import time

from pxetui.capture.decode import Decoder
from pxetui.capture.filters import boot_filter
from pxetui.capture.sniffer import RawSniffer, ScapySniffer


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    kind, iface, seconds, xid_base = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    dec = Decoder()
    xids: set[int] = set()
    counts = {"frames": 0, "dhcp": 0, "events": 0}
    lock = threading.Lock()

    def on_frame(data: bytes, ts: float) -> None:
        evs = dec.feed(data, ts)
        with lock:
            counts["frames"] += 1
            counts["events"] += len(evs)
            for e in evs:
                if e.type == "DhcpPacket":
                    counts["dhcp"] += 1
                    if e.msg_type == "DISCOVER" and e.xid >= xid_base:
                        xids.add(e.xid)

    drops = 0
    sn = RawSniffer(iface, boot_filter())
    sn.open()  # imports scapy to compile the filter: start-up cost, not per-packet cost
    if kind != "raw":
        sn.close()
        from scapy.sendrecv import AsyncSniffer  # noqa: F401 - same: import before measuring
    print(json.dumps({"ready": True}), flush=True)
    c0, t0 = cpu(), time.monotonic()
    if kind == "raw":

        async def run() -> None:
            loop = asyncio.get_running_loop()
            sn.attach(loop, on_frame)
            await asyncio.sleep(seconds)
            sn.detach(loop)

        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(run())
        sn.close()
        drops = sn.kernel_drops
    else:
        sc = ScapySniffer(iface, boot_filter())
        sc.start(on_frame)
        time.sleep(seconds)
        sc.stop()
    c1, t1 = cpu(), time.monotonic()
    print(json.dumps({"kind": kind, "cpu_s": c1 - c0, "wall_s": t1 - t0, "kernel_drops": drops,
                      "xids": sorted(xids), **counts}), flush=True)


if __name__ == "__main__":
    main()
