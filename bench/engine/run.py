"""`pxetui serve` as deployed under DHCP load, beside dnsmasq (and Kea), with boot traffic and a UI.

    python bench/engine/run.py [--rates 1000,2000,3000,5000] [--seconds 10] [--rounds 2]
        [--servers pxetui,dnsmasq,kea] [--ui app|fold]

Namespaces made for the run (removed afterwards, also on failure): the server under test on
10.99.0.1/16, the load in a client namespace on 10.99.0.2/16 (perfdhcp, full DORA of BIOS PXE clients as a relay
agent, like bench/dhcp) and 10.99.0.10-29 (20 TFTP and 20 HTTP downloads, one source address
per transfer, looped and paced: bench/engine/transfers.py). At each rate the servers take
turns, `--rounds` times (a fresh server and fresh state each run), so machine noise hits all
alike; the table prints medians and the ratio pxetui/anchor.

pxetui runs exactly as deployed: `python -m pxetui serve` (supervisor, DHCP/TFTP/HTTP services,
capture and the tracker on), durable leases, and a UI-protocol client attached to
<state>/control.sock that reads and folds everything (bench/engine/attach.py). The only change
from the defaults: dhcp.limits.new_offers_per_second is lifted above the load, since every
perfdhcp client is a new MAC. During the highest rate the attached client is the real Textual
app, headless (`--ui app`), and its CPU and the drop counters it shows are printed (issue 14,
point 7). The anchors: dnsmasq (DHCP and TFTP, --no-ping) with nginx (HTTP); Kea (DHCP) with
dnsmasq (TFTP only) and nginx, when kea-dhcp4 is installed.

Per run: lost exchanges (% of DISCOVERs without an ACK), CPU of everything in the server's
namespace per completed DORA (the whole engine's process tree: supervisor, services, capture,
tracker; for the anchors, their daemons; the transfers' cost is in it for all alike), and the
reply latency perfdhcp timed per exchange (DISCOVER->OFFER and REQUEST->ACK, p50/p99), and
`drops S/C`: datagrams the server's (S) and the load generator's (C) socket queues dropped. A
loss with C high and S low is the load generator not keeping up (on 2 cores it shares the CPU
with the server), not the server. `machine N% busy` is every core's busy share during the run
(from /proc/stat) and `perfdhcp` the load generator's own CPU: the budget the server had.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from netns import Netns, NetnsFactory  # noqa: E402

from bench.dhcp.run import BLOCK_RE, PERFDHCP, udp_receive_errors  # noqa: E402
from bench.engine.common import (  # noqa: E402
    AttachedUi,
    Nginx,
    cpu_by_label,
    machine_busy,
    make_content,
    ns_cpu_by_process,
    ns_cpu_seconds,
    pct,
    wait_port,
)

SERVER_IP, CLIENT_IP, PREFIX = "10.99.0.1", "10.99.0.2", 16
POOL = ("10.99.1.0", "10.99.254.254")
SOURCES = [f"10.99.0.{10 + i}" for i in range(20)]
CLIENTS = 60000
BASELINE = 2.0  # seconds of boot traffic and UI alone, before the DHCP load
UI_TAIL = 5.0  # the attached UI reads on after the load: drops are reported once queues drain
BUDGET = 40 * 60.0  # seconds for the whole run, whatever happens
TS_RE = re.compile(r"\*\*\*Timestamps for packets: ([A-Z-]+)\*\*\*\n((?:sent / received: .*\n?)*)")


@dataclass
class Run:
    server: str
    rate: int
    sent: int = 0
    acked: int = 0
    cpu: float = 0.0  # server namespace CPU seconds during the perfdhcp run
    base: float = 0.0  # ... of which the boot traffic and the UI would have cost without DHCP
    offer_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    queue_drops: int = 0  # datagrams the server's sockets dropped (receive buffer full)
    client_drops: int = 0  # ... and the load generator's: replies it never read
    transfers: dict[str, Any] = field(default_factory=dict)
    ui: dict[str, Any] = field(default_factory=dict)
    by_process: dict[str, float] = field(default_factory=dict)  # CPU seconds per server process
    loadgen: float = 0.0  # perfdhcp's CPU during its run, in cores (1.0 = one core busy)
    busy: float = 0.0  # the whole machine's busy share during the run (1.0 = every core busy)
    error: str = ""

    @property
    def lost(self) -> float:
        return 1.0 - self.acked / self.sent if self.sent else 1.0

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.acked * 1e6 if self.acked else 0.0

    @property
    def dhcp_us(self) -> float:
        """CPU per DORA net of the baseline (transfers and UI alone, measured just before)."""
        return max(0.0, self.cpu - self.base) / self.acked * 1e6 if self.acked else 0.0


class Server:
    name = ""

    def __init__(self, ns: Netns, work: Path, root: Path) -> None:
        self.ns, self.work, self.root = ns, work, root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sock: Path | None = None  # a control socket to attach a UI to (pxetui only)

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self) -> None:
        for proto, port in (("udp", 67), ("udp", 69), ("tcp", 80)):
            wait_port(self.ns, proto, port, self.procs)

    def stop(self) -> None:
        for p in reversed(self.procs):
            self.ns.stop(p)
        self.procs.clear()


class Pxetui(Server):
    name = "pxetui"

    def start(self) -> None:
        state = self.work / "pxetui-state"
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir()
        os.chmod(state, 0o755)
        cfg = self.work / "pxetui.toml"
        # every perfdhcp client is a new MAC: lift the rate of new offers above the load (its
        # check still runs on every packet; it never says no). Everything else is the default.
        cfg.write_text("[dhcp.limits]\nnew_offers_per_second = 1000000.0\nnew_offers_burst = 1000000\n")
        self.sock = state / "control.sock"
        self.procs.append(self.ns.popen(
            sys.executable, "-P", "-m", "pxetui", "serve", "--interface", "eth0", "--dhcp", "full",
            "--range", f"{POOL[0]}-{POOL[1]}", "--state-dir", str(state), "--config", str(cfg),
            "--tftp-root", str(self.root), "--http-root", str(self.root), "--http-port", "80",
            "--log-file", str(self.work / "pxetui.log"), log=self.work / "pxetui.stderr"))

    def wait_ready(self) -> None:
        super().wait_ready()
        assert self.sock is not None
        deadline = time.monotonic() + 20
        while not self.sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"pxetui opened no {self.sock} within 20 s")
            time.sleep(0.1)


class Dnsmasq(Server):
    name = "dnsmasq"

    def start(self) -> None:
        leases = self.work / "dnsmasq.leases"
        leases.unlink(missing_ok=True)
        self.procs.append(Nginx(self.ns, self.work, SERVER_IP, self.root).start())
        self.procs.append(self.ns.popen(
            "/usr/sbin/dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
            "--bind-interfaces", f"--dhcp-range={POOL[0]},{POOL[1]},255.255.0.0,1h",
            f"--dhcp-leasefile={leases}", "--dhcp-lease-max=70000", "--no-ping", "--quiet-dhcp",
            "--enable-tftp", f"--tftp-root={self.root}", "--tftp-max=200", "--quiet-tftp",
            f"--pid-file={self.work / 'dnsmasq.pid'}", log=self.work / "dnsmasq.log"))


class Kea(Server):
    name = "kea"

    def start(self) -> None:
        from bench.dhcp.run import Kea as KeaDhcp

        kea = KeaDhcp(self.ns, self.work)
        kea.start()
        assert kea.proc is not None
        self.procs.append(kea.proc)
        self.procs.append(Nginx(self.ns, self.work, SERVER_IP, self.root).start())
        self.procs.append(self.ns.popen(  # TFTP only: no dhcp-range, so dnsmasq serves no DHCP
            "/usr/sbin/dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
            "--bind-interfaces", "--enable-tftp", f"--tftp-root={self.root}", "--tftp-max=200",
            "--quiet-tftp", f"--pid-file={self.work / 'dnsmasq-tftp.pid'}", log=self.work / "dnsmasq-tftp.log"))


# Every perfdhcp client is a BIOS PXE client (option 60 PXEClient, option 93 = 0), as a rack
# booting is: the engine gives each a boot file and its tracker follows each one.
PXE_OPTIONS = ["-o", f"60,{b'PXEClient:Arch:00000:UNDI:002001'.hex()}", "-o", "93,0000"]
# The clients stand for other machines: on this one they must not wait for the CPU behind the
# server (pxetui runs its services at nice -10/-5, each in its own session's autogroup), or
# the replies they fail to read count as the server's loss. perfdhcp gets a session, an
# autogroup and a nice of its own above the server's; `drops S/C` shows who dropped.
FIRST = ["setsid", "-w", "sh", "-c", 'echo -15 > /proc/self/autogroup 2>/dev/null; exec nice -n -15 "$@"',
         "perfdhcp"]


def perfdhcp(client: Netns, run: Run, seconds: int) -> None:
    cmd = [*FIRST, PERFDHCP, "-4", "-l", "eth0", "-r", str(run.rate), "-p", str(seconds), "-R", str(CLIENTS),
           "-W", "500000", "-x", "t", *PXE_OPTIONS, SERVER_IP]
    try:
        r = client.run(*cmd, check=False, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        run.error = "perfdhcp timed out"
        return
    out = r.stdout + r.stderr
    blocks = {name: (int(s), int(rcv)) for name, s, rcv in BLOCK_RE.findall(out)}
    if "DISCOVER-OFFER" not in blocks or "REQUEST-ACK" not in blocks:
        run.error = f"unreadable perfdhcp output: {out[-300:]!r}"
        return
    run.sent, run.acked = blocks["DISCOVER-OFFER"][0], blocks["REQUEST-ACK"][1]
    for name, body in TS_RE.findall(out):
        ms = []
        for line in body.splitlines():
            sent, _, got = line.removeprefix("sent / received: ").partition(" / ")
            try:
                ms.append((float(got) - float(sent)) * 1000)
            except ValueError:
                continue
        if name == "DISCOVER-OFFER":
            run.offer_ms = ms
        elif name == "REQUEST-ACK":
            run.ack_ms = ms


def one_run(srv: Server, server_ns: Netns, client_ns: Netns, rate: int, seconds: int, ui_mode: str,
            pace: list[str]) -> Run:
    """A fresh server; boot traffic and (pxetui) an attached UI; one perfdhcp run."""
    run = Run(srv.name, rate)
    transfers: subprocess.Popen[bytes] | None = None
    ui: AttachedUi | None = None
    try:
        srv.start()
        srv.wait_ready()
        if srv.sock is not None:
            ui = AttachedUi(srv.sock, seconds + BASELINE + 1, ui_mode, srv.work / "attach.out", UI_TAIL)
        transfers = client_ns.popen(
            sys.executable, "-P", str(REPO / "bench" / "engine" / "transfers.py"), "--server", SERVER_IP,
            "--sources", ",".join(SOURCES), "--seconds", str(seconds + BASELINE + 2), *pace, stdout=subprocess.PIPE)
        time.sleep(0.5)  # the transfers and the UI are under way before the first DISCOVER
        b0, t0 = ns_cpu_seconds(server_ns), time.monotonic()
        time.sleep(BASELINE)  # the baseline: boot traffic and UI, no DHCP
        cpu0, t1 = ns_cpu_seconds(server_ns), time.monotonic()
        drops0, procs0 = udp_receive_errors(server_ns), ns_cpu_by_process(server_ns)
        cdrops0 = udp_receive_errors(client_ns)
        kids0, (busy0, all0), t2 = children_cpu(), machine_busy(), time.monotonic()
        perfdhcp(client_ns, run, seconds)
        # perfdhcp is reaped by the run (ip netns exec, setsid -w): its CPU is in our children's
        busy1, all1 = machine_busy()
        run.loadgen = (children_cpu() - kids0) / (time.monotonic() - t2)
        run.busy = (busy1 - busy0) / (all1 - all0) if all1 > all0 else 0.0
        run.cpu = ns_cpu_seconds(server_ns) - cpu0
        run.by_process = cpu_by_label(procs0, ns_cpu_by_process(server_ns))
        run.base = (cpu0 - b0) / (t1 - t0) * (time.monotonic() - t1)
        run.queue_drops = udp_receive_errors(server_ns) - drops0
        run.client_drops = udp_receive_errors(client_ns) - cdrops0
        out, _ = transfers.communicate(timeout=30)
        run.transfers = AttachedUi.last_json(out)
        if ui is not None:
            run.ui = ui.result(timeout=30)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        run.error = str(exc)[:200]
    finally:
        if ui is not None:
            ui.stop()
        if transfers is not None and transfers.poll() is None:
            client_ns.stop(transfers)
        srv.stop()
    return run


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def med(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def print_run(r: Run, rnd: int) -> None:
    t = r.transfers
    xfer = (f"tftp {t.get('tftp_bytes', 0) / 1e6:.0f} MB http {t.get('http_bytes', 0) / 1e6:.0f} MB, "
            f"{t.get('errors', 0)} errors")
    ui = ""
    if r.ui:
        ui = f"  ui[{r.ui.get('mode')}] {r.ui.get('cpu_pct', 0):.1f}% {r.ui.get('events_per_s', 0)} ev/s"
    print(f"  {r.server:8} {r.rate:5d}/s round {rnd}  acked {r.acked:6d}/{r.sent:6d}  lost {r.lost * 100:5.1f}%  "
          f"cpu {r.cpu_us:5.0f} (net {r.dhcp_us:5.0f}) µs/DORA  offer p50/p99 {pct(r.offer_ms, .5):5.1f}/{pct(r.offer_ms, .99):6.1f} ms  "
          f"ack p50/p99 {pct(r.ack_ms, .5):5.1f}/{pct(r.ack_ms, .99):6.1f} ms  drops {r.queue_drops}/{r.client_drops}  "
          f"[{xfer}]{ui}  machine {r.busy * 100:.0f}% busy, perfdhcp {r.loadgen * 100:.0f}% of a core"
          f"{'  ERROR ' + r.error if r.error else ''}", flush=True)


def summary(runs: list[Run], rates: list[int], names: list[str], top: int) -> None:
    print("\nmedians per rate (lost = DISCOVERs without ACK; µs/DORA = server namespace CPU per ACKed "
          "DORA, all / net of the boot traffic's and UI's baseline; latency in ms):")
    print(f"  {'server':8} {'rate':>6} {'lost %':>7} {'µs/DORA':>8} {'net':>6} {'offer p50':>9} {'p99':>7} "
          f"{'ack p50':>8} {'p99':>7}  transfers MB tftp/http  machine busy, perfdhcp (cores)")
    for rate in rates:
        for name in names:
            rs = [r for r in runs if r.server == name and r.rate == rate and not r.error]
            if not rs:
                continue
            print(f"  {name:8} {rate:6d} {med([r.lost * 100 for r in rs]):7.2f} {med([r.cpu_us for r in rs]):8.0f} "
                  f"{med([r.dhcp_us for r in rs]):6.0f} "
                  f"{med([pct(r.offer_ms, .5) for r in rs]):9.1f} {med([pct(r.offer_ms, .99) for r in rs]):7.1f} "
                  f"{med([pct(r.ack_ms, .5) for r in rs]):8.1f} {med([pct(r.ack_ms, .99) for r in rs]):7.1f}  "
                  f"{med([r.transfers.get('tftp_bytes', 0) / 1e6 for r in rs]):.0f}/"
                  f"{med([r.transfers.get('http_bytes', 0) / 1e6 for r in rs]):.0f}  "
                  f"{med([r.busy * 100 for r in rs]):3.0f}%, {med([r.loadgen for r in rs]):.2f}")
        p = [r for r in runs if r.server == "pxetui" and r.rate == rate and not r.error]
        for name in names:
            a = [r for r in runs if r.server == name and r.rate == rate and not r.error]
            if name == "pxetui" or not a or not p:
                continue
            ca, cp = med([r.cpu_us for r in a]), med([r.cpu_us for r in p])
            na, np_ = med([r.dhcp_us for r in a]), med([r.dhcp_us for r in p])
            print(f"  {'':8} {rate:6d} pxetui/{name}: cpu per DORA {cp / ca if ca else 0:.2f}x "
                  f"(net {np_ / na if na else 0:.2f}x), "
                  f"lost {med([r.lost * 100 for r in p]):.2f}% vs {med([r.lost * 100 for r in a]):.2f}%")
    for r in [r for r in runs if r.server == "pxetui" and r.rate == top and r.by_process]:
        total = sum(r.by_process.values()) or 1.0
        parts = sorted(r.by_process.items(), key=lambda kv: -kv[1])
        print(f"\nwhere pxetui's CPU went at {top}/s ({total:.1f} s over the perfdhcp run): "
              + ", ".join(f"{label} {cpu / total * 100:.0f}%" for label, cpu in parts if cpu > 0.005 * total))
    uis = [r.ui for r in runs if r.server == "pxetui" and r.rate == top and r.ui]
    if uis:
        cpu = med([u.get("cpu_pct", 0.0) for u in uis])
        lines = [u.get("dashboard_dropped_line") for u in uis]
        print(f"\nUI attached during {top}/s ({uis[0].get('mode')}): median {cpu:.1f} % of one core "
              f"(goal < 20 %: {'OK' if cpu < 20 else 'OVER'}); events folded per s "
              f"{med([u.get('events_per_s', 0) for u in uis]):.0f}; leases in its table "
              f"{med([u.get('leases', 0) for u in uis]):.0f} (perfdhcp got "
              f"{med([r.acked for r in runs if r.server == 'pxetui' and r.rate == top]):.0f} ACKs)")
        for i, (u, line) in enumerate(zip(uis, lines, strict=True)):
            print(f"  round {i + 1}: during the load: {line!r} (leases in its table {u.get('leases')}"
                  f"{', it was cut loose and reconnected' if u.get('reconnected') else ''}); "
                  f"{UI_TAIL:.0f} s after it: {u.get('dashboard_dropped_line_after')!r} "
                  f"(leases {u.get('leases_after')}); None = no drop line shown")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="1000,2000,3000,5000")
    ap.add_argument("--seconds", type=int, default=10, help="perfdhcp run per step (the issue: 30)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--servers", default="pxetui,dnsmasq,kea")
    ap.add_argument("--ui", choices=("app", "fold"), default="app",
                    help="the client attached during the highest rate (fold at the others)")
    ap.add_argument("--tftp-kbps", type=float, default=256.0, help="pace of each TFTP download")
    ap.add_argument("--http-kbps", type=float, default=1024.0, help="pace of each HTTP download")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/engine: needs root for network namespaces", file=sys.stderr)
        return 2
    for tool in (PERFDHCP, "/usr/sbin/dnsmasq", "/usr/sbin/nginx"):
        if not Path(tool).exists():
            print(f"bench/engine: {tool} is missing (bash scripts/setup.sh bench)", file=sys.stderr)
            return 2
    rates = [int(r) for r in args.rates.split(",")]
    pace = ["--tftp-kbps", str(args.tftp_kbps), "--http-kbps", str(args.http_kbps)]
    seconds = min(args.seconds, 60)
    wanted = args.servers.split(",")
    kinds: list[type[Server]] = [k for k in (Pxetui, Dnsmasq) if k.name in wanted]
    if "kea" in wanted:
        if shutil.which("kea-dhcp4"):
            kinds.append(Kea)
        else:
            print("kea-dhcp4 not installed (Debian kea-dhcp4-server): Kea skipped")
    print(f"bench/engine: load generator perfdhcp ({PERFDHCP}, full DORA of BIOS PXE clients as a relay agent, "
          f"{CLIENTS} distinct MACs); {seconds} s per step, rates {rates}, {args.rounds} rounds, "
          f"servers {[k.name for k in kinds]}; 20 TFTP + 20 HTTP downloads during each run, paced "
          f"to {args.tftp_kbps:.0f} / {args.http_kbps:.0f} kB/s each; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    start = time.monotonic()
    factory = NetnsFactory()
    runs: list[Run] = []
    tmp = Path(tempfile.mkdtemp(prefix="pxetui-engine-bench-"))
    os.chdir(tmp)  # a neutral working directory: `python -m` puts it first on sys.path
    try:
        tmp.chmod(0o755)  # nginx's worker and pxetui's unprivileged services read the content
        root = make_content(tmp / "root")
        server_ns, client_ns = factory.new("pxs"), factory.new("pxc")
        factory.link(server_ns, client_ns, f"{SERVER_IP}/{PREFIX}", f"{CLIENT_IP}/{PREFIX}")
        for src in SOURCES:
            client_ns.run("ip", "addr", "add", f"{src}/{PREFIX}", "dev", "eth0")
        for rate in rates:
            print(f"rate {rate}/s:", flush=True)
            for rnd in range(1, args.rounds + 1):
                for kind in kinds:
                    if time.monotonic() - start > BUDGET:
                        print(f"time budget of {BUDGET:.0f} s used up; stopping")
                        break
                    work = tmp / f"{kind.name}-{rate}-{rnd}"
                    work.mkdir()
                    work.chmod(0o755)
                    mode = args.ui if rate == rates[-1] else "fold"
                    r = one_run(kind(server_ns, work, root), server_ns, client_ns, rate, seconds, mode, pace)
                    runs.append(r)
                    print_run(r, rnd)
    finally:
        factory.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    summary(runs, rates, [k.name for k in kinds], rates[-1])
    print(f"({time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
