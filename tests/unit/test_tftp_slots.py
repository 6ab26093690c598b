"""The transfer counts and the slowest first acknowledgement shared by the TFTP processes
(slots.py), and the wait a full table derives from it (server.py)."""

from __future__ import annotations

import os

import pytest
from services import base_config

from pxetui.files import Resolver
from pxetui.tftp.server import (
    FIRST_ACKS_KEPT,
    UNCONFIRMED_AGE,
    UNCONFIRMED_FLOOR,
    UNCONFIRMED_MARGIN,
    TftpServer,
)
from pxetui.tftp.slots import ROW, SLOTS, Slots, slot_of


def test_a_client_address_picks_its_slot_by_its_low_16_bits():
    assert slot_of("10.99.0.2") == 2 and slot_of("10.99.1.2") == 258
    assert slot_of("192.168.255.255") == SLOTS - 1
    assert slot_of("not an address") == 0
    # IPv6 too: a DHCPv6 pool of up to 65,536 addresses gets one slot each (docs/IPV6.md).
    assert slot_of("fd99::1001") == 0x1001 and slot_of("fd99::1:1002") == 0x1002
    assert slot_of("fd99::zz") == 0


def test_counts_and_total_of_one_process():
    s = Slots.private()
    a, b = slot_of("10.0.0.5"), slot_of("10.0.0.6")
    for _ in range(3):
        s.take(a)
    s.take(b)
    assert (s.count(a), s.count(b), s.total()) == (3, 1, 4)
    s.give(a)
    s.give(b)
    s.give(b)  # never below zero
    assert (s.count(a), s.count(b), s.total()) == (2, 0, 2)


def test_every_process_sees_the_sum_of_all_rows_and_a_dead_row_is_cleared():
    service, fd = Slots.shared(3)
    try:
        w1, w2 = Slots.attach(fd, 3, 1), Slots.attach(fd, 3, 2)
    finally:
        os.close(fd)
    a = slot_of("10.0.0.5")
    service.take(a)
    w1.take(a)
    w1.take(a)
    w2.take(slot_of("10.0.0.9"))
    for view in (service, w1, w2):
        assert view.count(a) == 3 and view.total() == 4
    service.clear_row(1)  # worker 1 exited: its transfers went with it
    assert (w2.count(a), w2.total()) == (1, 2)


def test_a_row_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="no row 3 of 3"):
        Slots(bytearray(4 * ROW * 3), 3, 3)


def test_the_slowest_first_acknowledgement_is_shared_by_every_process():
    service, fd = Slots.shared(2)
    try:
        worker = Slots.attach(fd, 2, 1)
    finally:
        os.close(fd)
    assert service.first_ack() is None and worker.first_ack() is None  # none seen yet
    worker.set_first_ack(0.004)
    service.set_first_ack(0.0)  # sub-microsecond: still seen, never read back as "none"
    assert service.first_ack() == pytest.approx(0.004) and worker.first_ack() == pytest.approx(0.004)
    service.clear_row(1)  # the worker exited: what it saw goes with it
    assert service.first_ack() == pytest.approx(1e-6)


def test_a_full_table_waits_a_margin_over_the_slowest_recent_first_ack(tmp_path):
    server = TftpServer(base_config(tmp_path), Resolver(tmp_path), lambda ev: None)
    assert server.unconfirmed_age() == UNCONFIRMED_AGE  # no real client seen: the longest wait
    server.heard_first(0.001)
    assert server.unconfirmed_age() == UNCONFIRMED_FLOOR  # a LAN: never shorter than the floor
    server.heard_first(0.03)
    assert server.unconfirmed_age() == pytest.approx(UNCONFIRMED_MARGIN * 0.03)  # the slowest sets it
    server.heard_first(1.0)
    assert server.unconfirmed_age() == UNCONFIRMED_AGE  # never longer than the fixed wait
    for _ in range(FIRST_ACKS_KEPT):
        server.heard_first(0.002)
    assert server.unconfirmed_age() == UNCONFIRMED_FLOOR  # the slow one aged out of the last FIRST_ACKS_KEPT
