"""DHCP's UDP ports, for everything that binds, sends to, filters or reads them."""

from __future__ import annotations

SERVER_PORT = 67  # RFC 2131 4.1
CLIENT_PORT = 68
PXE_PORT = 4011  # PXE 2.1: proxyDHCP's boot server requests (docs/FIELD-NOTES.md "proxyDHCP")
DHCP_PORTS = (SERVER_PORT, CLIENT_PORT, PXE_PORT)
