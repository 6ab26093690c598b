"""Client system architecture: what a DHCP option 93 (IPv4) or option 61 (IPv6) value means.

One table for every part of pxetui that reads the code: the boot policy (which boot file),
the menus (which entries), the tracker and the UI (the firmware column), the diagnosis (is a
BIOS loader wrong for this client). Values are RFC 4578 §2.1's, as kept since in the IANA
"Processor Architecture Types" registry (DHCPv6 option 61, RFC 5970 §3.3, uses the same
registry). Codes not listed show as `arch<N>` and get no boot file.

7 and 9 are both x64 UEFI here: RFC 4578 and the registry swapped them until a 2016 erratum
and old configs and some firmware still send 9 (docs/FIELD-NOTES.md "Option 93").
"""

from __future__ import annotations

from dataclasses import dataclass

# The firmware families pxetui has boot loaders and menus for (the menu model's `archs`,
# the config's boot file kinds).
MENU_FAMILIES = ("bios", "uefi32", "uefi64", "arm64")
# The boot file kind (config `dhcp.boot_files`) of a UEFI HTTP boot client: a full URL.
HTTP_KIND = "http64"

# Option 60 prefixes (the PXE 2.1 spec; the UEFI spec's HTTP Boot chapter for HTTPClient): a
# client whose vendor class starts with one of them is network booting.
PXE_CLIENT = "PXEClient"
HTTP_CLIENT = "HTTPClient"
BOOT_CLIENTS = (PXE_CLIENT, HTTP_CLIENT)


@dataclass(frozen=True, slots=True)
class Arch:
    code: int
    name: str  # short, for tables and logs: "uefi64", "arm64-http"
    label: str  # for sentences: "x64 UEFI"
    family: str  # what it runs: bios | uefi32 | uefi64 | arm32 | arm64 | uboot32 | ...
    http: bool = False  # boots from an HTTP URL (vendor class HTTPClient)

    @property
    def uefi(self) -> bool:
        """UEFI firmware: it starts only .efi loaders."""
        return self.family not in ("bios", "uboot32", "uboot64")


def _table(*rows: Arch) -> dict[int, Arch]:
    return {a.code: a for a in rows}


ARCHES: dict[int, Arch] = _table(
    Arch(0, "bios", "x86 BIOS", "bios"),
    Arch(6, "uefi32", "IA32 UEFI", "uefi32"),
    Arch(7, "uefi64", "x64 UEFI", "uefi64"),
    Arch(9, "uefi64", "x64 UEFI", "uefi64"),  # the registry's EBC; x64 UEFI in the field
    Arch(10, "arm32", "ARM32 UEFI", "arm32"),
    Arch(11, "arm64", "ARM64 UEFI", "arm64"),
    Arch(15, "http32", "IA32 UEFI HTTP", "uefi32", http=True),
    Arch(16, "http64", "x64 UEFI HTTP", "uefi64", http=True),
    Arch(18, "arm32-http", "ARM32 UEFI HTTP", "arm32", http=True),
    Arch(19, "arm64-http", "ARM64 UEFI HTTP", "arm64", http=True),
    Arch(20, "bios-http", "BIOS HTTP", "bios", http=True),
    Arch(21, "uboot32", "ARM32 U-Boot", "uboot32"),
    Arch(22, "uboot64", "ARM64 U-Boot", "uboot64"),
    Arch(23, "uboot32-http", "ARM32 U-Boot HTTP", "uboot32", http=True),
    Arch(24, "uboot64-http", "ARM64 U-Boot HTTP", "uboot64", http=True),
    Arch(25, "riscv32", "RISC-V 32 UEFI", "riscv32"),
    Arch(26, "riscv32-http", "RISC-V 32 UEFI HTTP", "riscv32", http=True),
    Arch(27, "riscv64", "RISC-V 64 UEFI", "riscv64"),
    Arch(28, "riscv64-http", "RISC-V 64 UEFI HTTP", "riscv64", http=True),
    Arch(39, "loong64", "LoongArch64 UEFI", "loong64"),
    Arch(40, "loong64-http", "LoongArch64 UEFI HTTP", "loong64", http=True),
)


def lookup(code: int | None) -> Arch | None:
    return None if code is None else ARCHES.get(code)


def name(code: int | None) -> str:
    """The short name; `arch<N>` for a code not in the table, "" for no option 93."""
    if code is None:
        return ""
    a = ARCHES.get(code)
    return a.name if a else f"arch{code}"


def label(code: int) -> str:
    a = ARCHES.get(code)
    return a.label if a else f"arch {code}"


def is_uefi(code: int | None) -> bool:
    a = lookup(code)
    return a is not None and a.uefi


def menu_family(code: int | None) -> str:
    """The menu a client gets: a MENU_FAMILIES name, or "unknown". No option 93 at all is a
    PXE 2.x BIOS ROM older than RFC 4578."""
    if code is None:
        return "bios"
    a = ARCHES.get(code)
    return a.family if a and a.family in MENU_FAMILIES else "unknown"


def boot_kind(code: int) -> str:
    """The boot file kind (config `dhcp.boot_files`) option 93 alone asks for: HTTP_KIND for
    an HTTP boot client, the family where pxetui has loaders for it, else "unknown"."""
    a = ARCHES.get(code)
    if a is None:
        return "unknown"
    if a.http:
        return HTTP_KIND
    return a.family if a.family in MENU_FAMILIES else "unknown"


def is_boot_client(vendor_class: str | None) -> bool:
    return (vendor_class or "").startswith(BOOT_CLIENTS)


def is_http_client(vendor_class: str | None) -> bool:
    return (vendor_class or "").startswith(HTTP_CLIENT)


def client_name(code: int | None, vendor_class: str | None, ipxe: bool) -> str:
    """What the tracker and the UI call a client: the short name, as an HTTP boot client when
    its vendor class says so (the family's HTTP entry: 7 + HTTPClient is `http64`, like 16),
    `/ipxe` once iPXE runs."""
    a = lookup(code)
    fw = name(code)
    if is_http_client(vendor_class) and not (a and a.http):
        twin = next((t for t in ARCHES.values() if a and t.http and t.family == a.family), None)
        fw = twin.name if twin else (f"{fw}-http" if fw else "http")
    if ipxe:
        fw = f"{fw}/ipxe" if fw else "ipxe"
    return fw
