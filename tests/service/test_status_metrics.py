"""`pxetui status --json` and GET /metrics against the real engine: `pxetui serve` in a
namespace, a DHCP client, a TFTP and an HTTP download from another; status asked from outside
the namespace over the control socket, /metrics scraped from an allowed and a refused address."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from netns import require_tool, wait_for
from prometheus_client.parser import text_string_to_metric_families
from schema_lite import problems
from services import served_roots, udhcpc_lease

from pxetui import exitcodes
from pxetui.control import is_live, socket_path

pytestmark = pytest.mark.root

METRICS = "http://10.99.0.1:9419/metrics"


def status(state: Any, *extra: str) -> subprocess.CompletedProcess[str]:
    """`pxetui status` from the root namespace, as an operator runs it (the socket crosses)."""
    env = {**os.environ, "PXETUI_CONFIG": os.devnull}
    return subprocess.run([sys.executable, "-m", "pxetui", "status", "--state-dir", str(state), *extra],
                          capture_output=True, text=True, timeout=60, env=env)


def test_status_and_metrics_report_what_the_engine_served(netns, tmp_path):
    require_tool("busybox", package="busybox-static")
    require_tool("curl", "tftp", package="curl, tftp-hpa")
    server, client = netns.pair()
    payload = os.urandom(200_000)
    tftp_root, http_root, state = served_roots(tmp_path, payload, payload[:150_000])
    # On the LAN side, for the one scraper allowed: the server's own address here.
    conf = tmp_path / "pxetui.toml"
    conf.write_text('[metrics]\nenabled = true\naddress = "10.99.0.1"\nport = 9419\nallow = ["10.99.0.1/32"]\n')
    assert status(state).returncode == exitcodes.NOT_RUNNING  # before it starts

    eng = server.popen(sys.executable, "-m", "pxetui", "serve", "--config", str(conf), "--interface", "eth0",
                       "--dhcp", "full", "--state-dir", str(state), "--tftp-root", str(tftp_root),
                       "--http-root", str(http_root), "--boot-file", "bios=pxelinux.0",
                       log=tmp_path / "serve.log")
    sock = socket_path(state)
    wait_for(lambda: is_live(sock), timeout=20, what="the control socket")

    def doc() -> dict[str, Any]:
        p = status(state, "--json")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def all_running() -> bool:
        return {s["name"]: s["state"] for s in doc()["services"]} == dict.fromkeys(
            ("capture", "dhcp", "http", "tftp"), "running")
    wait_for(all_running, timeout=30, what="every service running")

    ip = udhcpc_lease(client, tmp_path)
    client.run("tftp", "10.99.0.1", "-m", "binary", "-c", "get", "pxelinux.0", str(tmp_path / "got.bin"))
    client.run("curl", "-sf", "-o", str(tmp_path / "got2.bin"), "http://10.99.0.1/vmlinuz")
    refused = client.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", METRICS, check=False)
    assert refused.stdout == "000"  # not in metrics.allow: closed, not a byte of the metrics

    def counted() -> bool:
        c = doc()["counters"]
        return bool(c["dhcp"]["dora_completed"] and c["transfers"]["tftp"]["done"]
                    and c["transfers"]["http"]["done"] and c["limits_hit"].get("metrics.allow"))
    wait_for(counted, timeout=30, what="the lease, both transfers and the refused scrape counted")

    st = doc()
    assert problems(st) == [], problems(st)
    c = st["counters"]
    assert c["dhcp"]["dora_completed"] >= 1 and c["dhcp"]["received"]["DISCOVER"] >= 1
    assert c["transfers"]["tftp"]["bytes"] >= len(payload) and c["transfers"]["http"]["bytes"] >= 150_000
    assert c["limits_hit"]["metrics.allow"] >= 1
    assert st["dhcp"]["mode"] == "full" and st["engine"]["interface"] == "eth0"
    assert all(s["pid"] and s["uptime_seconds"] is not None for s in st["services"])
    (me,) = [cl for cl in st["clients"] if cl["ip"] == ip]
    assert me["stage"] not in ("", "new")

    words = status(state)
    assert words.returncode == 0 and "DHCP: full" in words.stdout and me["mac"] in words.stdout

    scrape = server.run("curl", "-sf", METRICS)  # from 10.99.0.1, the one address allowed
    fams = {f.name: f for f in text_string_to_metric_families(scrape.stdout)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    assert samples[("pxetui_dhcp_dora_completed_total", ())] >= 1
    assert samples[("pxetui_transfers_total", (("outcome", "done"), ("protocol", "tftp")))] >= 1
    assert samples[("pxetui_transfer_bytes_total", (("protocol", "tftp"),))] >= len(payload)
    assert samples[("pxetui_service_up", (("service", "dhcp"),))] == 1
    assert sum(s.value for s in fams["pxetui_clients"].samples) >= 1
    assert samples[("pxetui_limit_hits_total", (("limit", "metrics.allow"),))] >= 1

    os.kill(eng.pid, signal.SIGTERM)
    assert eng.wait(10) == 0, (tmp_path / "serve.log").read_text()[-2000:]
    gone = status(state, "--json")
    assert gone.returncode == exitcodes.NOT_RUNNING and "no engine is running" in gone.stderr
    assert gone.stdout == ""
