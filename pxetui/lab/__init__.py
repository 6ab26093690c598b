"""The lab: an isolated virtual LAN where QEMU machines network-boot from pxetui.

  network.py  namespaces, the bridge (server 10.77.0.1/24), the VM's tap, peer namespaces
  content.py  boot content from Debian packages (kernel + busybox initrd, installer tree)
  cpio.py     initramfs (newc) reader and writer
  dracut.py   a live ISO in Fedora's layout with a dracut-made initrd (tests/e2e/test_dracut_live.py)
  qemu.py     the VM: TCG only, SeaBIOS + iPXE ROM, OVMF, OVMF Secure Boot; serial to a file
  run.py      Lab: network + content + `pxetui serve` in the namespace + VM, always torn down
  storm.py    many simulated boot clients at once (tests/e2e/test_storm.py, bench/storm)

`pxetui lab` (pxetui/commands/lab.py) drives it for users; tests/e2e drives it in CI.
"""
