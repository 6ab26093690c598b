"""What TFTP serves: the TFTP root on disk, then the library's virtual files (generated menus,
per-MAC configs, files inside imported ISOs). Built by the TFTP service and by each of its
worker processes (and again on SIGHUP); its own module so neither imports the other."""

from __future__ import annotations

from pxetui.config import Config
from pxetui.files import Resolver
from pxetui.library.provider import virtual_providers


def build_resolver(cfg: Config) -> Resolver:
    return Resolver(cfg.tftp_root, virtual_providers(cfg), case_insensitive=cfg.tftp.case_insensitive)
