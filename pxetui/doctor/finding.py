"""One thing doctor found, with the command that fixes it (the `--json` shape: README.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    check: str  # firewall | listener | dhcp-client | rp_filter | carrier | mtu
    severity: str  # "error": clients cannot boot; "warning": some clients, or slower
    problem: str  # plain words
    fix: str  # a command (or the step) that fixes it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
