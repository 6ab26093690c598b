"""`pxetui lab`: an isolated virtual LAN with pxetui serving a QEMU VM that network-boots."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pxetui import exitcodes
from pxetui.lab.keeper import Keeper
from pxetui.lab.network import LabError
from pxetui.lab.run import CONTENTS, LabOptions, run_headless, run_with_ui
from pxetui.uiport import NO_UI, RunUi


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab", help="boot a VM from pxetui on an isolated virtual network (needs root, QEMU)",
        description="Build a private network namespace with a bridge (server 10.77.0.1/24) and a "
                    "tap, run the pxetui engine there, and network-boot a QEMU VM (TCG) from it. "
                    "The host's own interfaces are never touched; everything is removed on exit.")
    p.add_argument("--arch", choices=ARCHES, default="x86_64",
                   help="arm64: an ARM64 VM (qemu-system-aarch64 -M virt, AAVMF UEFI PXE) booting "
                        "Debian's arm64 installer through its signed shim and GRUB")
    p.add_argument("--uefi", action="store_true", help="OVMF with its own PXE client (default: SeaBIOS + iPXE ROM)")
    p.add_argument("--secure-boot", action="store_true", help="OVMF with Secure Boot: shim, then signed GRUB")
    p.add_argument("--ipxe", action="store_true", help="boot through the iPXE HTTP script (BIOS: iPXE ROM; UEFI: chainload snponly.efi)")
    p.add_argument("--proxy", action="store_true", help="proxyDHCP: a separate dnsmasq in the lab hands out addresses")
    p.add_argument("--ipv6", action="store_true",
                   help="OVMF boots over IPv6 only (PXEv6: DHCPv6, TFTP over IPv6, GRUB); the lab "
                        "bridge gets fd77::1/64 and pxetui serves DHCPv6, no DHCPv4")
    p.add_argument("--content", choices=CONTENTS, default=None,
                   help="(default: busybox; debian-installer with --arch arm64) busybox: a kernel + small initrd that prints a marker and calls back; "
                        "debian-installer: the netboot tree up to its first screen; "
                        "memtest: the memtest86+ ISO imported into pxetui; "
                        "live-iso: a live-boot style ISO around the busybox system, imported into pxetui")
    p.add_argument("--headless", action="store_true", help="no UI: boot once, print the result, exit 0 on success")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="give up on the boot after S seconds")
    p.add_argument("--state-dir", metavar="DIR", help="where the lab keeps its files (default: a new temporary directory)")
    p.add_argument("--http-port", type=int, default=80, metavar="N")
    p.set_defaults(func=cmd_lab)


ARCHES = ("x86_64", "arm64")
ARM64_MEMORY_MB = 1024  # the arm64 installer's 40 MB initrd unpacked, without its low-memory mode


def options_from(args: argparse.Namespace) -> LabOptions:
    if getattr(args, "arch", "x86_64") == "arm64":
        state = args.state_dir or tempfile.mkdtemp(prefix="pxetui-lab-")
        return LabOptions(state_dir=Path(state), firmware="aavmf", content=args.content or "debian-installer",
                          http_port=args.http_port, memory_mb=ARM64_MEMORY_MB)
    if getattr(args, "ipv6", False):
        state = args.state_dir or tempfile.mkdtemp(prefix="pxetui-lab-")
        return LabOptions(state_dir=Path(state), firmware="uefi", content=args.content or "busybox",
                          http_port=args.http_port, ipv6="pxe")
    firmware = "secureboot" if args.secure_boot else "uefi" if args.uefi else "bios"
    boot_files: dict[str, str] = {}
    if not args.ipxe:
        # The BIOS VM's PXE client *is* iPXE: without --ipxe it gets PXELINUX like any BIOS.
        boot_files["ipxe"] = "pxelinux.0"
    elif firmware != "bios":
        boot_files["uefi64"] = "snponly.efi"
    state = args.state_dir or tempfile.mkdtemp(prefix="pxetui-lab-")
    return LabOptions(state_dir=Path(state), firmware=firmware, content=args.content or "busybox",
                      dhcp="proxy" if args.proxy else "full", http_port=args.http_port,
                      boot_files=boot_files)


def cmd_lab(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("pxetui lab: needs root to create network namespaces (run with sudo)", file=sys.stderr)
        return exitcodes.FAILED
    if getattr(args, "arch", "x86_64") == "arm64":
        flags = [f for f, on in (("--uefi", args.uefi), ("--secure-boot", args.secure_boot),
                                 ("--ipxe", args.ipxe), ("--proxy", args.proxy)) if on]
        if flags:
            print(f"pxetui lab: --arch arm64 boots AAVMF's PXE client with full DHCP; drop {' '.join(flags)}",
                  file=sys.stderr)
            return exitcodes.USAGE
    if getattr(args, "ipv6", False):
        flags = [f for f, on in (("--arch arm64", getattr(args, "arch", "x86_64") == "arm64"),
                                 ("--secure-boot", args.secure_boot), ("--ipxe", args.ipxe),
                                 ("--proxy", args.proxy)) if on]
        if flags:
            print(f"pxetui lab: --ipv6 boots OVMF's PXE over IPv6 with full DHCPv6; drop {' '.join(flags)}",
                  file=sys.stderr)
            return exitcodes.USAGE
    if args.secure_boot and args.ipxe:
        print("pxetui lab: --secure-boot boots shim and GRUB; Debian's iPXE is not signed", file=sys.stderr)
        return exitcodes.USAGE
    ui: RunUi | None = None if args.headless else getattr(args, "run_ui", None)  # from cli.main
    if not args.headless and ui is None:
        print(f"pxetui lab: {NO_UI}; or pass --headless", file=sys.stderr)
        return exitcodes.USAGE
    try:
        opts = options_from(args)
        if ui is None:
            return run_headless(opts, args.timeout)
        return run_with_ui(opts, args.timeout, _attach(ui))
    except LabError as exc:
        print(f"pxetui lab: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    except KeyboardInterrupt:
        print("pxetui lab: interrupted; lab removed", file=sys.stderr)
        return exitcodes.INTERRUPTED


def _attach(run_ui: RunUi) -> Callable[[Path, Path, Keeper], int]:
    """The UI run on the lab engine's control socket, its VM console shown, its VM kept."""

    def ui(sock: Path, console: Path, vm: Keeper) -> int:
        from pxetui.control import ControlClient

        return int(run_ui(lambda: ControlClient.connect(sock), str(console),
                          state_dir=str(sock.parent), lab=vm) or 0)

    return ui
