"""DHCPv6 service (RFC 8415, RFC 5970): codec, leases, boot policy, router advertisements."""
