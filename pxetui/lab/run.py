"""The lab, end to end: network, content, the pxetui engine inside the namespace, the VM.

`Lab` is the reusable piece (the e2e tests drive it); `run()` is what `pxetui lab` calls.
Teardown is one idempotent `close()`, reached on normal exit, on an exception, and on
SIGINT/SIGTERM/SIGHUP (turned into KeyboardInterrupt, whatever disposition was inherited), and (headless) when
the VM dies: the VM and the engine are ended by PID, then the namespaces are deleted.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from pxetui import privileges, store
from pxetui.interpreter import python_module
from pxetui.iso import testiso
from pxetui.lab import content, qemu
from pxetui.lab.keeper import Keeper
from pxetui.lab.network import SERVER_IP6, LabError, LabNetwork, Namespace
from pxetui.menus import model

CONTENTS = ("busybox", "debian-installer", "memtest", "live-iso")
ARM64_CONTENTS = ("debian-installer",)
IPV6_BOOTS = ("pxe", "http")  # OVMF over IPv6: PXEv6 (TFTP) or UEFI HTTP boot
ENGINE_START_TIMEOUT = 30.0


@dataclass
class LabOptions:
    state_dir: Path
    firmware: str = "bios"  # qemu.FIRMWARES
    content: str = "busybox"  # CONTENTS
    dhcp: str = "full"  # full | proxy (a separate dnsmasq in the lab hands out addresses)
    http_port: int = 80
    boot_files: dict[str, str] = field(default_factory=dict)  # KIND -> file, as --boot-file
    capture: bool = True
    memory_mb: int = 384
    mac: str = "52:54:00:77:00:10"
    prefix: int = 24  # the lab subnet's; 21 holds a 1,000-client boot storm (bench/storm)
    extra_serve_args: list[str] = field(default_factory=list)
    vm_args: list[str] = field(default_factory=list)  # extra QEMU arguments
    # "pxe" or "http": OVMF boots over IPv6 only (IPV6_BOOTS); "" boots over IPv4
    ipv6: str = ""

    def __post_init__(self) -> None:
        if self.content not in CONTENTS:
            raise LabError(f"content {self.content!r}: use one of {', '.join(CONTENTS)}")
        if self.firmware in qemu.ARM64_FIRMWARES and self.content not in ARM64_CONTENTS:
            # the busybox initrd and the ISOs are amd64; the arm64 installer is packaged whole
            raise LabError(f"content {self.content!r} has no arm64 build: the arm64 lab boots "
                           f"{', '.join(ARM64_CONTENTS)}")
        if self.firmware in qemu.ARM64_FIRMWARES and self.dhcp != "full":
            # docs/FIELD-NOTES.md: GRUB under proxyDHCP reads only the router's ACK, and arm64
            # has no iPXE in Debian to chain instead
            raise LabError("the arm64 lab runs full DHCP only (GRUB under proxyDHCP looks for its "
                           "menu on the wrong server)")
        if self.dhcp not in ("full", "proxy"):
            raise LabError(f"dhcp {self.dhcp!r}: the lab runs full or proxy")
        if self.ipv6 and (self.ipv6 not in IPV6_BOOTS or self.firmware != "uefi" or self.dhcp != "full"):
            raise LabError(f"ipv6 {self.ipv6!r}: the IPv6 lab boots OVMF (firmware uefi, full "
                           f"DHCPv6) by {' or '.join(IPV6_BOOTS)}")
        self.state_dir = Path(self.state_dir).resolve()


class EventLog:
    """Events from the engine's control socket, collected by a thread (replay + live)."""

    def __init__(self, sock_path: Path) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(sock_path))
        self.thread = threading.Thread(target=self._read, name="lab-events", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with self.sock.makefile("rb") as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    with self.lock:
                        self.events.append(ev)

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("type") == type_
                    and all(e.get(k) == v for k, v in match.items())]

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def wait_until(self, cond: Callable[[], object], timeout: float, what: str) -> object:
        """Poll `cond` until it is truthy (bounded); LabError names what never came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = cond()
            if found:
                return found
            time.sleep(0.1)
        raise LabError(f"the engine reported no {what} within {timeout:.0f}s")

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(2)


class Lab:
    """Build with `start()`, boot with `boot()`, always `close()` (or use `with`)."""

    def __init__(self, opts: LabOptions) -> None:
        self.opts = opts
        self.dir = opts.state_dir / "lab"
        self.root = self.dir / "root"  # served over both TFTP and HTTP
        self.engine_state = self.dir / "engine"
        self.console = self.dir / "console.log"
        self.net = LabNetwork(prefix=opts.prefix, server_ip6=SERVER_IP6 if opts.ipv6 else "")
        self.engine: subprocess.Popen[bytes] | None = None
        self.vm: qemu.Vm | None = None
        self.events: EventLog | None = None
        self._closing = threading.Lock()

    @property
    def marker(self) -> str:
        return MARKERS[self.opts.content]

    # -- build --------------------------------------------------------------------------
    def prepare_content(self) -> None:
        """Files under the served root, and pxetui's own boot menu (stored in the engine's
        state database) pointing at them; pxetui renders PXELINUX, GRUB and iPXE menus and
        serves the boot loaders from their Debian packages."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.engine_state.mkdir(parents=True, exist_ok=True)
        # The engine's services run unprivileged (docs/SECURITY.md): they must get through the
        # lab's directories (made 0700 under the CLI's umask) to the content they serve.
        for d in (self.opts.state_dir, self.dir):
            privileges.allow_search(d)
        if self.opts.content == "busybox":
            bb = content.install_busybox(self.root, self.opts.state_dir / "cache")
            self._save_menu(content.busybox_menu(bb))
        elif self.opts.content == "debian-installer" and self.opts.firmware in qemu.ARM64_FIRMWARES:
            # nothing copied: shim, GRUB, kernel and initrd are served from their package
            self._save_menu(content.installer_menu_arm64())
        elif self.opts.content == "debian-installer":
            content.install_debian_installer(self.root)
            self._save_menu(content.installer_menu())
        elif self.opts.content == "live-iso":
            self._import_live_iso()
        else:
            self._import_memtest()
        privileges.share_tree(self.root)

    def _save_menu(self, menu: model.Menu) -> None:
        conn = store.connect(self.engine_state / "pxetui.db")
        try:
            with conn:
                model.save_menu(conn, menu)
        finally:
            conn.close()

    def _import_memtest(self) -> None:
        """`pxetui import` of Debian's memtest86+ ISO: its files are served out of the .iso."""
        iso = content.MEMTEST_ISO
        if not iso.exists():
            raise LabError(f"{iso} is missing: install the Debian package memtest86+")
        self._import(iso, "memtest")

    def _import_live_iso(self) -> None:
        """A live-boot (Debian live) style ISO around the lab's kernel and busybox initrd,
        imported with `pxetui import`: the generated entry boots it with both files served out
        of the .iso. The busybox /init ignores live-boot's arguments and prints the marker."""
        bb = content.install_busybox(self.root, self.opts.state_dir / "cache")
        iso = testiso.live_iso(self.opts.state_dir / "live.iso", self.root / bb.kernel, self.root / bb.initrd)
        privileges.share_tree(iso)  # served out of the .iso by the unprivileged services
        self._import(iso, "live", extra_args=bb.args)

    def _import(self, iso: Path, name: str, extra_args: str = "") -> None:
        r = subprocess.run(python_module("pxetui", "import", str(iso), "--name", name,
                                         "--state-dir", str(self.engine_state), "-q"),
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise LabError(f"pxetui import {iso} failed: {r.stderr.strip() or r.stdout.strip()}")
        conn = store.connect(self.engine_state / "pxetui.db")
        try:
            menu = model.load_menu(conn)
        finally:
            conn.close()
        kind = "bios" if self.opts.firmware == "bios" else "uefi64"
        entry = next((e for e in menu.entries if e.source_iso == name and kind in e.archs), None)
        if entry is None:
            raise LabError(f"pxetui import made no {kind} entry for {iso}: {[e.id for e in menu.entries]}")
        if extra_args:
            entry.args = f"{entry.args} {extra_args}".strip()
        self._save_menu(content.lab_menu(entry, menu))

    def boot_files(self) -> dict[str, str]:
        files = {"bios": "pxelinux.0"}
        if self.opts.firmware == "secureboot":
            files["uefi64"] = "shimx64.efi"
        elif self.opts.dhcp == "full":
            files["uefi64"] = "grubx64.efi"
        # (proxyDHCP, UEFI: pxetui's policy chains iPXE; docs/FIELD-NOTES.md: GRUB 2.06 under
        # proxyDHCP looks for grub.cfg on the wrong server)
        files.update(self.opts.boot_files)
        return files

    def serve_command(self) -> list[str]:
        cmd = python_module("pxetui", "serve", "--interface", self.net.bridge,
                            "--state-dir", str(self.engine_state), "--dhcp", self.opts.dhcp,
                            "--tftp-root", str(self.root), "--http-root", str(self.root),
                            "--http-port", str(self.opts.http_port))
        if self.opts.ipv6:
            cmd.append("--ipv6")  # dual stack; the VM's port carries IPv6 only (start())
        if self.opts.dhcp == "full":
            start, end = self.net.dhcp_range()
            cmd += ["--range", f"{start}-{end}"]
        for kind, name in self.boot_files().items():
            cmd += ["--boot-file", f"{kind}={name}"]
        if not self.opts.capture:
            cmd.append("--no-capture")
        return cmd + self.opts.extra_serve_args

    def start(self) -> Lab:
        """Network, content, the site's DHCP server (proxy mode), then the engine."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.prepare_content()
            self.net.create()
            if self.opts.ipv6:
                self.net.ipv4_off(self.net.tap)
            if self.opts.dhcp == "proxy":
                self._start_site_dhcp()
            self._start_engine()
        except BaseException:
            self.close()
            raise
        return self

    def _start_site_dhcp(self) -> None:
        """The site's own DHCP server (dnsmasq, addresses only, no boot information) on a
        namespace of its own: pxetui in proxy mode only adds the boot information."""
        dnsmasq = "/usr/sbin/dnsmasq"
        if not Path(dnsmasq).exists():
            raise LabError("dnsmasq not found: install the Debian package dnsmasq-base")
        base = self.net.subnet_base
        site = self.net.add_peer(f"{base}.2/{self.net.prefix}")  # destroyed with the network
        log = open(self.dir / "site-dhcp.log", "wb")  # noqa: SIM115 - the child owns it
        site.popen([dnsmasq, "--no-daemon", "--conf-file=/dev/null", "--port=0",
                    "--interface=eth0", "--bind-interfaces", "--log-dhcp",
                    f"--dhcp-range={base}.150,{base}.199,1h",
                    f"--dhcp-leasefile={self.dir / 'site-dhcp.leases'}"], stdout=log)

    def _start_engine(self) -> None:
        sock = self.engine_state / "control.sock"
        sock.unlink(missing_ok=True)
        # Its log rotates by size (log.max_bytes); engine.stderr holds what came before it opened.
        err = open(self.dir / "engine.stderr", "wb")  # noqa: SIM115 - the child owns it
        self.engine = self.net.ns.popen([*self.serve_command(), "--log-file", str(self.dir / "engine.log")],
                                        stdout=err)
        deadline = time.monotonic() + ENGINE_START_TIMEOUT
        while True:
            if self.engine.poll() is not None:
                raise LabError(f"the engine exited ({self.engine.returncode}):\n{self.engine_log()}")
            if sock.exists():
                try:
                    self.events = EventLog(sock)
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise LabError(f"the engine did not open {sock} within {ENGINE_START_TIMEOUT:.0f}s"
                               f":\n{self.engine_log()}")
            time.sleep(0.1)
        # Serving starts when the services the lab needs report running.
        events, want = self.events, self.expected_services()
        events.wait_until(lambda: want <= {e["service"] for e in events.of("ServiceState", state="running")},
                          ENGINE_START_TIMEOUT, f"running {', '.join(sorted(want))} services")

    def expected_services(self) -> set[str]:
        """The engine's services a boot needs (a lab with DHCP and TFTP from another server,
        tests/e2e/test_export_dnsmasq.py, needs only HTTP)."""
        return {"tftp", "http", "dhcp", "dhcp6"} if self.opts.ipv6 else {"tftp", "http", "dhcp"}

    def engine_log(self, lines: int = 30) -> str:
        from pxetui.logfile import tail

        return "\n".join(tail([self.dir / "engine.stderr", self.dir / "engine.log"], lines))

    # -- boot ---------------------------------------------------------------------------
    def boot(self) -> qemu.Vm:
        spec = qemu.VmSpec(firmware=self.opts.firmware, mac=self.opts.mac,
                           memory_mb=self.opts.memory_mb, tap=self.net.tap,
                           vga=self.opts.content == "memtest",
                           extra_args=[*(qemu.ovmf_ipv6_args(self.opts.ipv6) if self.opts.ipv6 else []),
                                       *self.opts.vm_args])
        self.vm = qemu.Vm(spec, self.console, self.dir / "vm").start(self.net.ns)
        return self.vm

    def wait_booted(self, timeout: float) -> float:
        """Seconds from VM start to the content's marker on the serial console."""
        assert self.vm is not None, "boot() first"
        return self.vm.wait_for(self.marker, timeout)

    # -- teardown -----------------------------------------------------------------------
    def close(self) -> None:
        with self._closing:  # the VM watcher and the main thread may both get here
            self._close()

    def _close(self) -> None:
        if self.vm is not None:
            self.vm.stop()
        if self.engine is not None:
            Namespace.stop(self.engine, timeout=5)
        if self.events is not None:
            self.events.close()
            # kept for whoever debugs a failed boot: every event the engine reported
            with (self.dir / "events.jsonl").open("w") as fh:
                fh.writelines(json.dumps(e) + "\n" for e in self.events.snapshot())
            self.events = None
        self.net.destroy()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


MARKERS = {
    "busybox": content.MARKER,
    "debian-installer": content.INSTALLER_MARKER,
    "memtest": content.MEMTEST_MARKER,
    "live-iso": content.MARKER,
}


@contextmanager
def interrupts_as_keyboard() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP (a closed terminal) tear the lab down. SIGINT is set too:
    Python leaves it ignored when the parent ignored it (a shell's `cmd &`, nohup)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_headless(opts: LabOptions, timeout: float, out: Callable[[str], None] = print) -> int:
    """Boot once; 0 when the booted system printed its marker, 1 otherwise."""
    with interrupts_as_keyboard(), Lab(opts) as lab:
        v6 = f" and {lab.net.server_ip6} (boot over IPv6 only: {opts.ipv6})" if opts.ipv6 else ""
        out(f"lab: namespace {lab.net.name}, server {lab.net.server_ip}{v6} on {lab.net.bridge}, "
            f"content {opts.content}, firmware {opts.firmware}; console {lab.console}")
        vm = lab.boot()
        try:
            seconds = lab.wait_booted(timeout)
        except LabError as exc:
            out(f"lab: boot failed: {exc}")
            return 1
        out(f"lab: {lab.marker!r} on the console after {seconds:.1f}s")
        if opts.content == "busybox":  # it calls back over HTTP, then powers off
            vm.wait_exit(60)
            called = content.CALLBACK_OK in vm.console_text()
            out(f"lab: the booted system {'called back' if called else 'did NOT call back'} over HTTP")
            return 0 if called else 1
        return 0


def run_with_ui(opts: LabOptions, timeout: float, ui: Callable[[Path, Path, Keeper], int]) -> int:
    """The UI attached to the lab engine, with the keeper of its VM; the lab goes away when the
    UI quits. A VM that powers off (or dies) leaves the lab up: the UI says so and can boot it
    again (pxetui/lab/keeper.py); `timeout` limits each boot until its system comes up."""
    with interrupts_as_keyboard(), Lab(opts) as lab:
        keeper = Keeper(lab, timeout).start()
        try:
            return ui(lab.engine_state / "control.sock", lab.console, keeper)
        finally:
            keeper.close()
