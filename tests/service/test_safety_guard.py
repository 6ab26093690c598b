"""The netns guard: a DHCP server started with the guard set runs only in that namespace."""

from __future__ import annotations

import sys

import pytest

from pxetui.safety import GUARD_ENV, UnsafeNetwork, check_netns_guard

pytestmark = pytest.mark.root

PROBE = "from pxetui.safety import check_netns_guard; check_netns_guard(); print('allowed')"


def test_guard_refuses_outside_the_named_namespace(netns, monkeypatch):
    ns = netns.new()
    monkeypatch.setenv(GUARD_ENV, ns.name)
    with pytest.raises(UnsafeNetwork, match=f"refusing to run DHCP outside network namespace {ns.name}"):
        check_netns_guard()  # this test process is in the root namespace


def test_guard_allows_inside_and_names_a_missing_namespace(netns, monkeypatch):
    ns = netns.new()
    r = ns.run(sys.executable, "-c", PROBE)  # ns.run sets the guard to ns itself
    assert r.stdout.strip() == "allowed"
    other = netns.new()
    r = ns.run(sys.executable, "-c", PROBE, check=False, env={GUARD_ENV: other.name})
    assert r.returncode != 0 and "refusing to run DHCP outside" in r.stderr
    monkeypatch.setenv(GUARD_ENV, "pxt-no-such-ns")
    with pytest.raises(UnsafeNetwork, match=f"^{GUARD_ENV}=pxt-no-such-ns: no such network namespace$"):
        check_netns_guard()
