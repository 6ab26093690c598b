"""Option negotiation (RFC 2347/2348/2349/7440)."""

from __future__ import annotations

import pytest

from pxetui.config import Config
from pxetui.tftp.options import SKB_OVERHEAD, WINDOW_BYTES, Limits, OptionRefused, negotiate


def test_no_options_no_oack():
    n = negotiate({}, 1000, Limits())
    assert (n.blksize, n.windowsize, n.oack) == (512, 1, {})


def test_oack_carries_only_what_was_asked_in_order():
    n = negotiate({"tsize": "0", "blksize": "1468", "unknown": "1"}, 4242, Limits())
    assert list(n.oack.items()) == [("tsize", 4242), ("blksize", 1468)]
    assert "windowsize" not in n.oack and "timeout" not in n.oack


def test_blksize_clamped_to_mtu():
    cfg = Config()
    cfg.mtu = 1500
    n = negotiate({"blksize": "65464"}, 1, Limits.from_config(cfg))
    assert n.blksize == 1468 and n.oack == {"blksize": 1468}


def test_blksize_below_minimum_refused():
    with pytest.raises(OptionRefused, match="blksize"):
        negotiate({"blksize": "7"}, 1, Limits())


def test_windowsize_capped_by_config_and_receive_buffer():
    cfg = Config()
    cfg.tftp.windowsize_max = 8
    assert negotiate({"windowsize": "64"}, 1, Limits.from_config(cfg)).windowsize == 8
    # Big blocks: the window must still fit a client's ~208 KiB receive buffer.
    n = negotiate({"windowsize": "64", "blksize": "65464"}, 1, Limits())
    assert n.windowsize * (n.blksize + SKB_OVERHEAD) <= WINDOW_BYTES or n.windowsize == 1
    assert n.oack["windowsize"] == n.windowsize
    n = negotiate({"windowsize": "16", "blksize": "8192"}, 1, Limits())
    assert n.windowsize == WINDOW_BYTES // (8192 + SKB_OVERHEAD)


def test_windowsize_zero_refused():
    with pytest.raises(OptionRefused):
        negotiate({"windowsize": "0"}, 1, Limits())


@pytest.mark.parametrize("value, accepted", [("1", True), ("255", True), ("0", False), ("256", False), ("x", False)])
def test_timeout_range(value, accepted):
    n = negotiate({"timeout": value}, 1, Limits())
    assert ("timeout" in n.oack) is accepted
    assert n.timeout == (int(value) if accepted else None)


def test_upload_echoes_client_tsize_and_ignores_windowsize():
    n = negotiate({"tsize": "5000", "windowsize": "8"}, None, Limits(), upload=True)
    assert n.oack == {"tsize": 5000} and n.tsize == 5000 and n.windowsize == 1


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b9", "\u0661\u0662\u0668", "9" * 5000])
def test_a_value_not_in_ascii_digits_is_ignored(value):
    # '²'.isdigit(), and int() refuses it: a ValueError escaped negotiate()
    neg = negotiate({"blksize": value, "tsize": value}, 100, Limits())
    assert neg.oack == {} and neg.blksize == 512
