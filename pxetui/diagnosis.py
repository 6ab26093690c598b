"""Why a client's boot stopped, in plain words: rules over the events of one boot attempt.

Each rule looks at the event dicts (the JSON form of pxetui.events) of a single client's
current boot and returns a `Finding` or None. `definite` findings are certain as soon as they
appear (an iPXE loop, a 404 after the kernel started); the others are only reported once the
client has made no progress for a while, because a client may still recover (pxelinux probes
a dozen missing config files on every normal boot, docs/FIELD-NOTES.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pxetui import archtypes
from pxetui.bootfiles import BIOS_LOADER, ROOTFS, UEFI_LOADER, is_ipxe_binary
from pxetui.clientlogs import stages as install
from pxetui.dhcp.ports import PXE_PORT

Ev = dict[str, Any]

MEMSIZE = re.compile(r"memsize=(\d+)")  # iPXE's ${memsize}, MiB
# How a TransferFailed reason starts for OVMF's tsize-only request (pxetui.capture.decode
# writes it): a probe, not a failure.
SIZE_PROBE = "size probe"
# The fields the rules read. The tracker keeps only these of each event it records, for the
# memory and disk each client costs (docs/SECURITY.md, "Bounded disk and memory"): a rule that
# reads another field adds it here.
FIELDS = frozenset({
    "type", "ts", "direction", "ours", "msg_type", "arch", "vendor_class", "boot_file", "yiaddr",
    "server_ip", "port", "path", "transfer_id", "protocol", "size", "bytes_done", "retransmits",
    "reason", "status", "detail", "app", "message",
})


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    definite: bool = False


def _name(ev: Ev) -> str:
    return str(ev.get("path") or "")


def _failed(events: list[Ev]) -> list[Ev]:
    return [e for e in events if e["type"] == "TransferFailed"
            and not str(e.get("reason", "")).startswith(SIZE_PROBE)]


def _not_found(e: Ev) -> bool:
    if e.get("protocol", "tftp") == "http":
        return e.get("status") == 404
    return e.get("status") == 1 or "not found" in str(e.get("reason", "")).lower()


def _offers(events: list[Ev]) -> list[Ev]:
    return [e for e in events if e["type"] == "DhcpPacket" and e.get("msg_type") in ("OFFER", "ACK")]


def _server(e: Ev) -> str:
    who = e.get("server_ip") or "?"
    return f"pxetui ({who})" if e.get("ours") and e.get("direction") != "wire" else str(who)


def _arch(events: list[Ev]) -> int | None:
    for e in events:
        if e["type"] == "DhcpPacket" and e.get("arch") is not None:
            return int(e["arch"])
    return None


def _transfers_after(events: list[Ev], ts: float) -> list[Ev]:
    return [e for e in events if e["type"] == "TransferStarted" and e["ts"] >= ts]


def foreign_offer_won(events: list[Ev]) -> Finding | None:
    acks = [e for e in events if e["type"] == "DhcpPacket" and e.get("msg_type") == "ACK" and e.get("yiaddr")]
    if not acks:
        return None
    ack = acks[-1]
    if ack.get("boot_file") or _transfers_after(events, ack["ts"]):
        return None
    rivals = [e for e in _offers(events) if e.get("boot_file") and e.get("yiaddr")
              and e.get("server_ip") != ack.get("server_ip")]
    # A proxyDHCP offer (no address) beside the router's ACK is the normal proxy flow.
    proxy = [e for e in _offers(events) if e.get("boot_file") and not e.get("yiaddr")]
    if not rivals or proxy:
        return None
    r = rivals[-1]
    return Finding("foreign_offer_won",
                   f"Another DHCP server's offer won: the client took {ack['yiaddr']} from "
                   f"{_server(ack)}, which names no boot file, instead of {_server(r)}'s offer "
                   f"with boot file {r['boot_file']}. Stop the other server answering PXE clients, "
                   "or let it keep addresses and run pxetui as proxyDHCP.")


def grub_under_proxy(events: list[Ev]) -> Finding | None:
    """docs/FIELD-NOTES.md: GRUB 2.06 under proxyDHCP reads only the router's ACK and looks for
    grub.cfg on the wrong server."""
    started = [e for e in events if e["type"] == "TransferStarted"]
    if not started or not re.search(r"grub[^/]*\.efi$", _name(started[-1]), re.I):
        return None
    proxy = [e for e in _offers(events) if e.get("boot_file") or e.get("port") == PXE_PORT]
    proxy = [e for e in proxy if not e.get("yiaddr") or e.get("port") == PXE_PORT]
    routers = [e for e in _offers(events) if e.get("msg_type") == "ACK" and e.get("yiaddr")
               and e.get("port") != PXE_PORT]
    if not proxy or not routers:
        return None
    p, r = proxy[-1].get("server_ip"), routers[-1].get("server_ip")
    if not p or p == r:
        return None
    return Finding("grub_under_proxy",
                   f"GRUB ({_name(started[-1])}) was loaded from the proxyDHCP server {p}, then "
                   f"nothing: under proxyDHCP GRUB reads only the address server's ACK ({r}) and "
                   f"looks for grub.cfg there. Chain iPXE for UEFI clients under proxyDHCP, or "
                   "build GRUB with the server in its prefix.")


def no_answer(events: list[Ev]) -> Finding | None:
    discovers = [e for e in events if e["type"] == "DhcpPacket" and e.get("msg_type") == "DISCOVER"]
    if not discovers or _offers(events) or any(e["type"] == "LeaseGranted" for e in events):
        return None
    span = discovers[-1]["ts"] - discovers[0]["ts"]
    return Finding("no_answer",
                   f"No DHCP server answered: the client sent {len(discovers)} DISCOVER(s) over "
                   f"{span:.0f} s and no offer was seen. Check that a DHCP server (or relay) serves "
                   "this segment or VLAN; a server may also answer unicast where this capture "
                   "cannot see it.")


def no_boot_file(events: list[Ev]) -> Finding | None:
    offers = _offers(events)
    pxe = any(archtypes.is_boot_client(str(e.get("vendor_class") or ""))
              for e in events if e["type"] == "DhcpPacket" and e.get("msg_type") in ("DISCOVER", "REQUEST"))
    if not offers or not pxe or any(e.get("boot_file") for e in offers):
        return None
    if any(e["type"] in ("TransferStarted", "BootDecision") for e in events):
        return None
    servers = sorted({_server(e) for e in offers})
    return Finding("no_boot_file",
                   f"No boot file in any offer: {len(offers)} DHCP answer(s) from {', '.join(servers)} "
                   "gave this PXE client an address but no boot file name (option 67 / BOOTP file), "
                   "so the firmware has nothing to download.")


# -- IPv6 (RFC 8415 DHCPv6, RFC 5970 boot options; docs/IPV6.md) --------------------------
DHCP6_ANSWERS = ("ADVERTISE", "REPLY")
IPV6_DOC = "docs/IPV6.md"


def _solicits(events: list[Ev]) -> list[Ev]:
    """The client's DHCPv6 Solicits as a boot client: option 61 or a PXE/HTTP vendor class."""
    return [e for e in events if e["type"] == "DhcpPacket" and e.get("msg_type") == "SOLICIT"
            and (e.get("arch") is not None or archtypes.is_boot_client(str(e.get("vendor_class") or "")))]


def ipv6_not_served(count: int, span: float) -> str:
    """What to say when a boot client asks over DHCPv6 and nothing serves IPv6."""
    return (f"Firmware asked over IPv6 but only IPv4 is served: the client sent {count} DHCPv6 "
            f"Solicit(s) over {span:.0f} s and no DHCPv6 server answered. Start pxetui with "
            f"--ipv6 (config ipv6.enabled, {IPV6_DOC}), or switch the firmware's IPv6 PXE off.")


def dhcp6_unanswered(events: list[Ev]) -> Finding | None:
    """A boot client Solicits over DHCPv6 and no Advertise or Reply was seen."""
    sol = _solicits(events)
    if not sol or any(e["type"] == "DhcpPacket" and e.get("msg_type") in DHCP6_ANSWERS for e in events):
        return None
    # It booted over IPv4 after all (OVMF tries IPv4 first, then IPv6): the IPv4 rules speak.
    if _transfers_after(events, sol[-1]["ts"]):
        return None
    return Finding("dhcp6_unanswered", ipv6_not_served(len(sol), sol[-1]["ts"] - sol[0]["ts"]))


def dhcp6_no_boot_url(events: list[Ev]) -> Finding | None:
    """RFC 5970 section 3.1: without option 59 the firmware has no file to fetch."""
    if not _solicits(events):
        return None
    answers = [e for e in events if e["type"] == "DhcpPacket" and e.get("msg_type") in DHCP6_ANSWERS]
    if not answers or any(e.get("boot_file") for e in answers):
        return None
    if any(e["type"] in ("TransferStarted", "BootDecision") for e in events):
        return None
    servers = sorted({_server(e) for e in answers})
    return Finding("dhcp6_no_boot_url",
                   f"No boot file URL (option 59) in any DHCPv6 answer: {len(answers)} Advertise/Reply "
                   f"from {', '.join(servers)} to this boot client carried none, so the firmware has "
                   "nothing to download. Give it tftp://[server]/file (PXE) or http://[server]/file "
                   f"(HTTP boot), as pxetui --ipv6 does ({IPV6_DOC}).")


RA_MEMORY = 1800.0  # an RA older than this before the first Solicit no longer counts (RFC 4861: MaxRtrAdvInterval ≤ 1800 s)


def router_advert_problem(events: list[Ev]) -> Finding | None:
    """No Router Advertisement on the segment where it stops an IPv6 boot (docs/IPV6.md,
    "Router advertisements", measured with OVMF): UEFI HTTP boot over IPv6 needs one with the
    on-link prefix; PXE from a server on the same link works without any (or with M off), so
    for PXE only a client that took its address and boot URL and then fetched nothing counts.

    Segment-wide: `events` are one client's Solicits, Replies and transfer starts as capture
    saw them, and every RouterAdvert it saw; the caller waits until the client made no progress
    for a while. Not in RULES: the tracker keeps a client's own events only, where no RA is."""
    sol = _solicits(events)
    if not sol or any(e["type"] == "TransferStarted" for e in events):
        return None
    if any(e["type"] == "RouterAdvert" and e["ts"] >= sol[0]["ts"] - RA_MEMORY for e in events):
        return None
    set_ra = ("Set ipv6.router_advertisements (auto or on) to have pxetui send them, or enable "
              f"them on the router ({IPV6_DOC}).")
    if any(str(e.get("vendor_class") or "").startswith("HTTPClient") for e in sol):
        return Finding("router_advert_problem",
                       "No router advertisement on this segment while this UEFI HTTP boot client "
                       f"asks over DHCPv6 ({len(sol)} Solicit(s)): HTTP boot over IPv6 needs one "
                       f"with the on-link prefix. {set_ra}")
    got = [e for e in events if e["type"] == "DhcpPacket" and e.get("msg_type") == "REPLY"
           and e.get("yiaddr") and e.get("boot_file")]
    if not got:
        return None  # no address yet: dhcp6_unanswered / dhcp6_no_boot_url speak
    r = got[-1]
    return Finding("router_advert_problem",
                   f"No router advertisement on this segment, and the firmware took {r['yiaddr']} and "
                   f"{r['boot_file']} but fetched nothing: without one it reaches only a boot "
                   f"server on this link. {set_ra}")


def firmware_mismatch(events: list[Ev]) -> Finding | None:
    # The loader the client acted on (its first download) against the architecture it
    # announced just before; with no download yet, the last offer against the last request.
    first = next((e for e in events if e["type"] == "TransferStarted"), None)
    before = [e for e in events if e["type"] == "DhcpPacket" and e.get("arch") is not None
              and (first is None or e["ts"] <= first["ts"])]
    if not before:
        return None
    arch = int(before[-1]["arch"])
    if first is not None:
        loader = _name(first)
    else:
        loader = next((e.get("boot_file") for e in reversed(_offers(events)) if e.get("boot_file")), None)
    if not loader or "://" in loader:
        return None
    if archtypes.is_uefi(arch) and BIOS_LOADER.search(loader):
        return Finding("firmware_mismatch",
                       f"UEFI client ({archtypes.label(arch)}, option 93 = {arch}) was "
                       f"sent the BIOS loader {loader}; UEFI firmware can only start a .efi loader "
                       "(shimx64.efi, grubx64.efi, ipxe.efi). Options 93 = 7 and 9 both mean x64 UEFI.")
    if arch == 0 and UEFI_LOADER.search(loader):
        return Finding("firmware_mismatch",
                       f"BIOS client (option 93 = 0) was sent the UEFI loader {loader}; give BIOS "
                       "clients pxelinux.0 or undionly.kpxe.")
    return None


def tftp_not_found(events: list[Ev]) -> Finding | None:
    fails = [e for e in _failed(events) if _not_found(e)]
    if not fails:
        return None
    last = fails[-1]
    # Something fetched successfully after it: it was a probe (pxelinux.cfg/01-<mac>, shim's
    # revocation lists, ...), not what stopped the boot.
    if any(e["type"] == "TransferFinished" and e["ts"] > last["ts"] for e in events):
        return None
    proto = "HTTP" if last.get("protocol") == "http" else "TFTP"
    boot = next((e.get("boot_file") for e in reversed(_offers(events)) if e.get("boot_file")), None)
    definite = bool(boot and _name(last) in (boot, boot.lstrip("/")))
    first = next((_name(e) for e in events if e["type"] == "TransferStarted"), "")
    hint = ""
    if "/" in first.strip("/") and "/" not in _name(last).strip("/"):
        hint = (f" The loader was {first}: it looked in the TFTP root, not next to itself "
                "(shim finds grubx64.efi only through the BOOTP file field).")
    return Finding("tftp_not_found",
                   f"{proto} file not found: the client asked for '{_name(last)}' and the server "
                   f"does not have it.{hint}", definite=definite)


def tftp_timeouts(events: list[Ev]) -> Finding | None:
    # Only files the client never got count: a retry that then succeeded is a hiccup.
    got = {_name(e).lstrip("/") for e in events if e["type"] == "TransferFinished"}
    tids = {e.get("transfer_id"): _name(e) for e in events if e["type"] == "TransferStarted"}
    timeouts = [e for e in _failed(events) if e.get("protocol", "tftp") == "tftp"
                and _name(e).lstrip("/") not in got
                and re.search(r"timeout|timed out|no answer", str(e.get("reason", "")), re.I)]
    retries = max((int(e.get("retransmits") or 0) for e in events if e["type"] == "TransferProgress"
                   and e.get("protocol", "tftp") == "tftp" and not e.get("bytes_done")
                   and tids.get(e.get("transfer_id"), "").lstrip("/") not in got), default=0)
    count = len(timeouts) + retries
    if count < 2:
        return None
    name = _name(timeouts[-1]) if timeouts else next(
        (_name(e) for e in reversed(events) if e["type"] == "TransferStarted"), "?")
    last_fail = max((e["ts"] for e in timeouts), default=0.0)
    progressed = any(e["type"] == "TransferFinished" and e["ts"] > last_fail for e in events)
    return Finding("tftp_timeouts",
                   f"Repeated TFTP timeouts: the client asked for '{name}' {count + (0 if timeouts else 1)} "
                   "times without getting data. A firewall or NAT between client and server is "
                   "probably dropping TFTP (UDP 69 and the server's reply ports).",
                   definite=count >= 3 and not progressed)


def ipxe_chain_loop(events: list[Ev]) -> Finding | None:
    # A loop is a cycle: DHCP, iPXE loaded, iPXE asks DHCP again, is handed iPXE again. Loads
    # with no DHCP between them are one firmware fetching twice (OVMF's HTTP boot GETs the
    # file for its size, aborts and GETs it again; a retry after a lost packet), not a loop.
    cycles: list[Ev] = []
    asked = True
    for e in events:
        if e["type"] == "DhcpPacket" and e.get("msg_type") in ("DISCOVER", "REQUEST"):
            asked = True
        elif e["type"] == "TransferStarted" and is_ipxe_binary(_name(e)):
            if asked:
                cycles.append(e)
            asked = False
    if len(cycles) < 3 or any(e["type"] == "TransferStarted" and not is_ipxe_binary(_name(e))
                              and e["ts"] > cycles[-1]["ts"] for e in events):
        return None
    return Finding("ipxe_chain_loop",
                   f"iPXE chain loop: the client loaded {_name(cycles[-1])} {len(cycles)} times, "
                   "asking DHCP again each time. iPXE asks DHCP again and is handed iPXE again; "
                   "answer clients with user class 'iPXE' (or option 175) with a script URL instead "
                   "of the iPXE binary.", definite=True)


KERNEL_ARG_FILE = re.compile(r"(\.squashfs|\.sfs|squashfs\.img|\.iso|(^|/)modloop[^/]*|(^|/)LiveOS/|"
                             r"(^|/)(live|casper)/|preseed|kickstart|\.ks$|(^|/)ks\.cfg|user-data|"
                             r"meta-data|autoinstall|(^|/)seed/|\.repo$|(^|/)repodata/|\.treeinfo)", re.I)


def http_404_kernel_arg(events: list[Ev]) -> Finding | None:
    kernel = next((e["ts"] for e in events if e["type"] == "TransferStarted"
                   and re.search(r"(vmlinuz|linux|bzimage|kernel)[^/]*$", _name(e), re.I)), None)
    if kernel is None:
        return None
    for e in _failed(events):
        if e.get("protocol") == "http" and e.get("status") == 404 and e["ts"] > kernel \
                and not re.search(r"(initrd|initramfs)", _name(e), re.I):
            # What live-boot, casper, dracut, anaconda and d-i fetch from their command line is
            # certain; any other 404 may be an optional probe, so wait until the client stalls.
            return Finding("http_404_kernel_arg",
                           f"HTTP 404 for {_name(e)}, a URL the booted kernel fetched (from its "
                           "command line: fetch=, url=, root=live:, inst.repo=, ...). Fix the URL in "
                           "the menu entry or put the file there.",
                           definite=bool(KERNEL_ARG_FILE.search(_name(e).split("?", 1)[0])))
    return None


def squashfs_ram(events: list[Ev]) -> Finding | None:
    mem = None
    for e in events:
        text = str(e.get("detail") or "") if e["type"] == "BootCallback" else _name(e)
        m = MEMSIZE.search(text)
        if m:
            mem = int(m.group(1))
    if mem is None:
        return None
    sizes = [int(e["size"]) for e in events if e.get("size")
             and ROOTFS.search(_name(e) or _path_of(events, e.get("transfer_id")))]
    if not sizes:
        return None
    size_mib = max(sizes) / (1 << 20)
    # Live systems copy the squashfs into RAM (docs/FIELD-NOTES.md): about twice its size is needed.
    if 2 * size_mib <= mem:
        return None
    return Finding("squashfs_ram",
                   f"The root filesystem is {size_mib:.0f} MiB and a live system copies it into RAM: "
                   f"it needs about {2 * size_mib:.0f} MiB, and the client reports {mem} MiB. "
                   "Give the machine more memory or boot an image that does not load into RAM.",
                   definite=True)


def _path_of(events: list[Ev], tid: str | None) -> str:
    if not tid:
        return ""
    return next((_name(e) for e in events if e["type"] == "TransferStarted" and e.get("transfer_id") == tid), "")


def installer_failed(events: list[Ev]) -> Finding | None:
    """The installer said it cannot go on: its preseed could not be fetched, no mirror answers,
    a step failed (its log lines, read by pxetui/clientlogs/stages.py with the step each was
    logged in). The first such line is the cause; the step's failure follows it."""
    lines = [(str(e.get("app") or ""), str(e.get("message") or "")) for e in events if e["type"] == "ClientLog"]
    failure = next((r.failure for r in install.replay(lines) if r.failure), "")
    return Finding("installer_failed", failure, definite=True) if failure else None


Rule = Callable[[list[Ev]], Finding | None]
RULES: tuple[Rule, ...] = (
    installer_failed, ipxe_chain_loop, squashfs_ram, http_404_kernel_arg, firmware_mismatch, foreign_offer_won,
    no_boot_file, dhcp6_no_boot_url, no_answer, dhcp6_unanswered, grub_under_proxy, tftp_timeouts,
    tftp_not_found,
)
# The rules that can return a definite finding, in RULES order: the tracker looks for one after
# every transfer start or failure, and the others cannot give it one.
DEFINITE_RULES: tuple[Rule, ...] = tuple(
    r for r in RULES if r in (installer_failed, ipxe_chain_loop, squashfs_ram, http_404_kernel_arg, tftp_timeouts, tftp_not_found))


def diagnose(events: list[Ev], rules: tuple[Rule, ...] = RULES) -> list[Finding]:
    """Every rule that matches this boot's events, most specific first."""
    events = sorted(events, key=lambda e: e.get("ts", 0.0))
    out = []
    for rule in rules:
        f = rule(events)
        if f is not None:
            out.append(f)
    return out


def definite(events: list[Ev]) -> list[Finding]:
    """The findings that are certain already (DEFINITE_RULES), most specific first."""
    return [f for f in diagnose(events, DEFINITE_RULES) if f.definite]


def stalled(stage: str, idle: float, last: str) -> str:
    """The fallback when no rule explains a stop."""
    if stage in ("kernel", "initrd", "rootfs"):
        return (f"Nothing heard for {idle:.0f} s after the {stage} download ({last}). The kernel "
                "may be running: only pxetui's own menus report 'booted' through a callback.")
    return f"No progress for {idle:.0f} s at stage '{stage or 'none'}' (last: {last})."
