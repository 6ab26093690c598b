"""Boot menus: one model, rendered to PXELINUX, GRUB and iPXE; PXELINUX import; seeds."""
