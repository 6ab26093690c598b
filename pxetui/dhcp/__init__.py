"""DHCP and proxyDHCP: wire codec, lease store, boot policy, server and auto-mode probe."""
