"""Boot loaders: found where Debian installs them, the package named when missing, a GRUB
network image built with grub-mkimage, and a TFTP root laid out with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from netns import require_tool

from pxetui.loaders import GRUB_EFI_MODULES, REQUIRED, SPECS, build_grub_image, find_loaders

PACKAGES = {"pxelinux.0": "pxelinux", "ldlinux.c32": "syslinux-common", "grubx64.efi": "grub-efi-amd64-signed",
            "shimx64.efi": "shim-signed", "undionly.kpxe": "ipxe", "ipxe.efi": "ipxe", "snponly.efi": "ipxe"}


def test_installed_loaders_are_found() -> None:
    for name, path in (("pxelinux.0", "/usr/lib/PXELINUX/pxelinux.0"),
                       ("ldlinux.c32", "/usr/lib/syslinux/modules/bios/ldlinux.c32"),
                       ("grubx64.efi", "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"),
                       ("shimx64.efi", "/usr/lib/shim/shimx64.efi.signed"),
                       ("undionly.kpxe", "/usr/lib/ipxe/undionly.kpxe"),
                       ("snponly.efi", "/usr/lib/ipxe/snponly.efi")):
        require_tool(path, package=PACKAGES[name])
    ld = find_loaders()
    assert ld.missing() == [], [f.describe() for f in ld.missing()]
    assert ld.path("grubx64.efi") == "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"
    assert ld.path("ipxe.efi") in ("/usr/lib/ipxe/ipxe.efi", "/boot/ipxe.efi")
    assert ld.path("chain.c32") == "/usr/lib/syslinux/modules/bios/chain.c32"  # any module
    for name in ("pxelinux.0", "grubx64.efi", "shimx64.efi", "ipxe.efi", "snponly.efi"):
        assert any(name in line for line in ld.describe_lines())


def test_missing_loaders_name_their_debian_package(tmp_path: Path) -> None:
    ld = find_loaders(prefix=tmp_path)
    missing = {f.spec.name: f.describe() for f in ld.missing()}
    assert set(missing) == set(REQUIRED)
    for name, pkg in PACKAGES.items():
        assert f"apt-get install {pkg}" in missing[name], missing[name]
    assert "not packaged in Debian" in ld.found["wimboot"].describe()
    for f in ld.found.values():  # the line shows the remedy as it is, after "missing: "
        assert f.describe() == f"{f.spec.name:14} missing: {f.remedy()}"
    assert ld.path("chain.c32") is None


def test_fake_tree_is_found_under_a_prefix(tmp_path: Path) -> None:
    spec = next(s for s in SPECS if s.name == "pxelinux.0")
    p = tmp_path / spec.candidates[0].lstrip("/")
    p.parent.mkdir(parents=True)
    p.write_bytes(b"pxe")
    ld = find_loaders(prefix=tmp_path)
    assert ld.path("pxelinux.0") == str(p)
    dest = tmp_path / "tftp"
    assert ld.layout(dest) == ["pxelinux.0"]
    assert (dest / "pxelinux.0").read_bytes() == b"pxe" and not (dest / "pxelinux.0").is_symlink()


def test_grub_image_is_built_when_the_signed_one_is_missing(tmp_path: Path) -> None:
    require_tool("grub-mkimage", package="grub-common")
    require_tool("/usr/lib/grub/x86_64-efi/normal.mod", package="grub-efi-amd64-bin")
    # No signed GRUB under the prefix; its x86_64-efi modules are the real ones.
    prefix = tmp_path / "empty"
    modules = prefix / GRUB_EFI_MODULES.lstrip("/")
    modules.parent.mkdir(parents=True)
    modules.symlink_to(GRUB_EFI_MODULES)
    ld = find_loaders(prefix=prefix, state_dir=tmp_path / "state", build_grub=False)
    assert ld.path("grubx64.efi") is None and ld.built == []
    ld = find_loaders(prefix=prefix, state_dir=tmp_path / "state", build_grub=True)
    out = tmp_path / "state" / "loaders" / "grubx64.efi"
    assert ld.built == ["grubx64.efi"] and ld.path("grubx64.efi") == str(out)
    data = out.read_bytes()
    assert data[:2] == b"MZ" and b"(tftp)/grub" in data
    ld = find_loaders(prefix=prefix, state_dir=tmp_path / "state", build_grub=True)
    assert ld.path("grubx64.efi") == str(out) and ld.built == []  # built once, then reused


def test_grub_build_error_names_the_package(tmp_path: Path) -> None:
    from pxetui.loaders import GrubBuildError

    with pytest.raises(GrubBuildError, match="grub-efi-amd64-bin"):
        build_grub_image(tmp_path / "x.efi", modules_dir=tmp_path)


def test_concurrent_grub_builds_each_rename_a_whole_image(tmp_path: Path) -> None:
    """The TFTP and HTTP services may both build at start: neither sees the other's half."""
    import threading

    require_tool("grub-mkimage", package="grub-common")
    require_tool("/usr/lib/grub/x86_64-efi/normal.mod", package="grub-efi-amd64-bin")
    out = tmp_path / "loaders" / "grubx64.efi"
    errors: list[BaseException] = []

    def build() -> None:
        try:
            build_grub_image(out)
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == []
    data = out.read_bytes()
    assert data[:2] == b"MZ" and b"(tftp)/grub" in data
    assert sorted(p.name for p in out.parent.iterdir()) == ["grubx64.efi"]  # no temporaries left
