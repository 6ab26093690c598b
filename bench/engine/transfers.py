"""Background boot traffic for bench/engine: N TFTP and N HTTP downloads, looped, paced, bounded.

    python bench/engine/transfers.py --server 10.99.0.1 --sources 10.99.0.10,... \
        --tftp-file loader.bin --http-file kernel.bin --seconds 12 [--tftp-kbps 256] [--http-kbps 1024]

Run inside a namespace made for it. Transfer i comes from source address i (one client per
address, as a rack of machines would: the servers' per-client limits see 20 clients, not one).
Each loops its file until `--seconds` pass, paced to a per-transfer rate so that the load is
the same against every server and leaves CPU for the DHCP load under test (a lockstep TFTP
client in Python costs as much per block as the server). Prints one JSON object: files done,
bytes and errors per protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import time
from collections import Counter


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.q: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.q.put_nowait((data, addr))


async def tftp_once(src: str, server: str, path: str, kbps: float, deadline: float) -> int:
    """One RRQ with blksize 1408 (as pxelinux asks), ACKs paced to `kbps`; bytes received."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Udp, local_addr=(src, 0))
    try:
        rrq = b"\x00\x01" + path.encode() + b"\0octet\0blksize\x001408\0"
        last, dest = rrq, (server, 69)
        transport.sendto(last, dest)
        expected, total, tries, blk = 1, 0, 0, 512
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(1.0):
                    data, addr = await proto.q.get()
            except TimeoutError:
                tries += 1
                if tries > 5:
                    raise RuntimeError(f"tftp timeout at block {expected}") from None
                transport.sendto(last, dest)
                continue
            dest = addr  # RFC 1350: the transfer continues from the server's new port
            op = struct.unpack("!H", data[:2])[0]
            if op == 5:
                why = data[4:].rstrip(b"\0").decode(errors="replace")
                raise RuntimeError(f"tftp error {why}")
            if op == 6:  # OACK (RFC 2347)
                parts = data[2:].split(b"\0")
                opts = {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
                blk = int(opts.get(b"blksize", b"512"))
                last = b"\x00\x04\x00\x00"
                transport.sendto(last, dest)
                continue
            if op != 3:
                continue
            if struct.unpack("!H", data[2:4])[0] != expected & 0xFFFF:
                continue  # a duplicate: our ACK crossed a retransmission
            total += len(data) - 4
            expected += 1
            tries = 0
            ahead = total / (kbps * 1024) - (time.monotonic() - t0)
            if ahead > 0:
                await asyncio.sleep(ahead)
            last = b"\x00\x04" + data[2:4]
            transport.sendto(last, dest)
            if len(data) - 4 < blk:
                return total
        return total
    finally:
        transport.close()


async def http_once(src: str, server: str, port: int, path: str, kbps: float, deadline: float) -> int:
    reader, writer = await asyncio.open_connection(server, port, local_addr=(src, 0))
    try:
        writer.write(f"GET /{path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            raise RuntimeError(f"http {status.decode(errors='replace')}")
        got, t0 = 0, time.monotonic()
        while time.monotonic() < deadline and (chunk := await reader.read(64 * 1024)):
            got += len(chunk)
            ahead = got / (kbps * 1024) - (time.monotonic() - t0)
            if ahead > 0:  # not reading: TCP's window closes and the server waits, as for a slow client
                await asyncio.sleep(ahead)
        return got
    finally:
        writer.close()


async def loop_one(kind: str, src: str, a: argparse.Namespace, deadline: float, stats: Counter[str],
                   errors: Counter[str]) -> None:
    while time.monotonic() < deadline:
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic() + 2)):
                if kind == "tftp":
                    n = await tftp_once(src, a.server, a.tftp_file, a.tftp_kbps, deadline)
                else:
                    n = await http_once(src, a.server, a.http_port, a.http_file, a.http_kbps, deadline)
            stats[f"{kind}_bytes"] += n
            if time.monotonic() < deadline:
                stats[f"{kind}_files"] += 1
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            errors[f"{kind}: {str(exc)[:60]}"] += 1
            await asyncio.sleep(0.2)


async def run(a: argparse.Namespace) -> dict[str, object]:
    srcs = a.sources.split(",")
    deadline = time.monotonic() + min(a.seconds, 300.0)  # bounded whatever it is asked
    stats: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    jobs = [loop_one("tftp", srcs[i % len(srcs)], a, deadline, stats, errors) for i in range(a.tftp)]
    jobs += [loop_one("http", srcs[i % len(srcs)], a, deadline, stats, errors) for i in range(a.http)]
    await asyncio.gather(*jobs)
    return {**stats, "errors": sum(errors.values()), "error_kinds": dict(errors.most_common(3))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--sources", required=True, help="comma-separated local addresses, one per transfer")
    ap.add_argument("--tftp", type=int, default=20)
    ap.add_argument("--http", type=int, default=20)
    ap.add_argument("--tftp-file", default="loader.bin")
    ap.add_argument("--http-file", default="kernel.bin")
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--tftp-kbps", type=float, default=256.0, help="per TFTP transfer")
    ap.add_argument("--http-kbps", type=float, default=1024.0, help="per HTTP transfer")
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(run(a))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
