"""VMware ESXi's boot.cfg, served rewritten for network boot.

The ISO's BOOT.CFG (and EFI/BOOT/BOOT.CFG) name the kernel and modules from the CD's root
(`kernel=/b.b00`, `modules=/jumpstrt.gz --- /useropts.gz ...`). mboot resolves names without a
leading `/` against `prefix=`, so the served copy sets `prefix=<http>/iso/<name>` and strips the
slashes: every module then comes over HTTP from inside the .iso (docs/FIELD-NOTES.md, "Kernel
arguments by family"). Served as `iso/<name>/pxetui/<path of the boot.cfg>`; the
original stays at its own path.

A scripted install: when a `ks.cfg` seed is stored for the machine or for the entry, the
served copy's `kernelopt=` gets `ks=<its seed URL>` (the kickstart option of a
network install, docs/FIELD-NOTES.md), with this boot's seed token (pxetui/library/provider.py).
"""

from __future__ import annotations

REWRITTEN_DIR = "pxetui"
MAX_BOOT_CFG = 64 * 1024  # real ones are ~1.5 KiB
KICKSTART = "ks.cfg"  # the seed a scripted install reads


def esxi_cfg_path(path: str) -> str:
    """Where the rewritten copy of the image's `path` (BOOT.CFG, EFI/BOOT/BOOT.CFG) is served,
    relative to the image's tree."""
    return f"{REWRITTEN_DIR}/{path}"


def is_boot_cfg(inner: str) -> bool:
    return inner.rsplit("/", 1)[-1].lower() == "boot.cfg"


def _strip(files: str) -> str:
    """`/a.b00 --- /b.v00 arg` -> `a.b00 --- b.v00 arg`: modules are `---`-separated, each a
    name and its own arguments."""
    parts = [p.strip() for p in files.split("---")]
    return " --- ".join(p.lstrip("/") for p in parts)


def rewrite_boot_cfg(text: str, prefix: str, ks: str | None = None) -> str:
    """The boot.cfg with `prefix=<prefix>` (placed before `kernel=`, as VMware's tools write it)
    and no leading `/` in `kernel=` and `modules=`; with `ks`, every `kernelopt=` names that
    kickstart URL (in place of any `ks=` it had); every other line as it was."""
    out: list[str] = []
    placed = False
    ks_done = ks is None
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        k = key.strip().lower()
        if eq and k == "prefix":
            continue
        if eq and k == "kernelopt" and ks is not None:
            words = [w for w in value.split() if not w.lower().startswith("ks=")]
            out.append(f"{key.strip()}={' '.join([*words, f'ks={ks}'])}")
            ks_done = True
            continue
        if eq and k in ("kernel", "modules"):
            if not placed:
                out.append(f"prefix={prefix}")
                placed = True
            out.append(f"{key.strip()}={_strip(value)}")
            continue
        out.append(line)
    if not placed:
        out.append(f"prefix={prefix}")
    if not ks_done:
        out.append(f"kernelopt=ks={ks}")
    return "\n".join(out) + "\n"
