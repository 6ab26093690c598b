"""Transfer counts per client address, shared by every TFTP process (docs/SECURITY.md).

The kernel spreads a client's requests over the worker processes by a hash of its address and
port (workers.py), so a per-address cap kept by each process alone would let one host hold
the cap once per process. Each process counts its own transfers in its own row of one table in
shared memory (a memfd the workers map) and a check sums the rows. One writer per row, so no
locks: two processes checking at the same instant can each let one more in, so a host may go
over the cap by at most the number of processes minus one, briefly.

Each row also holds its process's slowest recent first acknowledgement (µs), which sets how
long a full table waits before it ends a transfer nobody acknowledged (server.py,
`unconfirmed_age`): the clients of every process alike.

A client address picks its slot by its low 16 bits, for IPv6 too: exact on any /16 or smaller
IPv4 segment (a boot LAN) and for DHCPv6 pools of up to 65,536 addresses; elsewhere two
addresses may share a slot and so a cap (never more than the cap in total).
"""

from __future__ import annotations

import mmap
import os
import socket

SLOTS = 1 << 16
FIRST_ACK = SLOTS + 1  # a row's item after its total: see `first_ack`
ROW = SLOTS + 2  # one counter per slot, then the row's total, then its slowest first ACK (µs)
ITEM = 4  # uint32


def slot_of(ip: str) -> int:
    try:
        b = socket.inet_pton(socket.AF_INET6, ip) if ":" in ip else socket.inet_aton(ip)
    except OSError:
        return 0
    return (b[-2] << 8) | b[-1]


class Slots:
    """`take(slot)` when a transfer starts, `give(slot)` when it ends; `count(slot)` and
    `total()` over every process."""

    def __init__(self, buf: mmap.mmap | bytearray, rows: int, row: int) -> None:
        if not 0 <= row < rows or len(buf) < rows * ROW * ITEM:
            raise ValueError(f"slot table of {len(buf)} bytes has no row {row} of {rows}")
        self._buf = buf
        self.view = memoryview(buf).cast("I")
        self.rows, self.row = rows, row
        self.base = row * ROW
        self._others = [r * ROW for r in range(rows) if r != row]

    @classmethod
    def private(cls) -> Slots:
        """One process alone (tests, benchmarks, a one-CPU machine)."""
        return cls(bytearray(ROW * ITEM), 1, 0)

    @classmethod
    def shared(cls, rows: int) -> tuple[Slots, int]:
        """A table for `rows` processes; this process is row 0. Returns the memfd to pass on."""
        fd = os.memfd_create("pxetui-tftp-slots")  # close-on-exec: workers get it by pass_fds
        try:
            os.ftruncate(fd, rows * ROW * ITEM)
            return cls(mmap.mmap(fd, rows * ROW * ITEM), rows, 0), fd
        except OSError:
            os.close(fd)
            raise

    @classmethod
    def attach(cls, fd: int, rows: int, row: int) -> Slots:
        """A worker's view of the service's table (the fd may be closed afterwards)."""
        return cls(mmap.mmap(fd, rows * ROW * ITEM), rows, row)

    def count(self, slot: int) -> int:
        v = self.view
        n = v[self.base + slot]
        for base in self._others:
            n += v[base + slot]
        return n

    def total(self) -> int:
        v = self.view
        n = v[self.base + SLOTS]
        for base in self._others:
            n += v[base + SLOTS]
        return n

    def take(self, slot: int) -> None:
        v, b = self.view, self.base
        v[b + slot] += 1
        v[b + SLOTS] += 1

    def give(self, slot: int) -> None:
        v, b = self.view, self.base
        if v[b + slot]:  # never below zero (a row cleared under a live transfer, say)
            v[b + slot] -= 1
            v[b + SLOTS] -= 1

    def set_first_ack(self, seconds: float) -> None:
        """This process's slowest first acknowledgement of late."""
        self.view[self.base + FIRST_ACK] = max(1, min(int(seconds * 1e6), 0xFFFFFFFF))  # 0 is "none"

    def first_ack(self) -> float | None:
        """The slowest first acknowledgement any process saw of late, in seconds; None when
        none has seen one."""
        v = self.view
        us = v[self.base + FIRST_ACK]
        for base in self._others:
            us = max(us, v[base + FIRST_ACK])
        return us / 1e6 if us else None

    def clear_row(self, row: int) -> None:
        """A worker process ended: its transfers ended with it."""
        base = row * ROW
        self.view[base : base + ROW] = memoryview(bytes(ROW * ITEM)).cast("I")
