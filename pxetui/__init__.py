"""pxetui: a terminal control centre for network (PXE) booting. The engine lives here."""

__version__ = "0.1.0"
