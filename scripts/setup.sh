#!/usr/bin/env bash
# pxetui setup for a fresh Debian 12 / Ubuntu machine, as root.
#   bash scripts/setup.sh lab    install everything, then open pxetui on its lab network
#   bash scripts/setup.sh test   install everything, then run the whole test suite
#   bash scripts/setup.sh bench  install everything plus the benchmarks' anchor servers
#   bash scripts/setup.sh        install everything only
# Installs the Debian packages in scripts/debian-packages.txt and a virtualenv in .venv.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages and makes network namespaces)" >&2
  exit 1
fi

install_list() {  # the packages of a list file that are not installed yet
  local pkgs missing
  pkgs=$(grep -v '^\s*#' "$1" | tr '\n' ' ')
  missing=$(for p in $pkgs; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done | tr '\n' ' ')
  if [ -n "${missing// /}" ]; then
    echo "setup.sh: installing Debian packages: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # The servers among them (Kea, ISC dhcpd, tftpd-hpa, nginx) are for the tests and the
    # benchmarks, which run their own copies in namespaces: none may start on this host's
    # interfaces, so package scripts are told not to start services while we install.
    local policy=/usr/sbin/policy-rc.d own_policy=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
    fi
    apt-get install -y -q --no-install-recommends $missing || { [ -n "$own_policy" ] && rm -f "$policy"; exit 1; }
    if [ -n "$own_policy" ]; then rm -f "$policy"; fi
  fi
}
install_list scripts/debian-packages.txt
# ... and stay off at the next boot: DHCP servers on a host's own interfaces are never ours to start.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now kea-dhcp4-server.service isc-dhcp-server.service 2>/dev/null || true
fi
if [ "${1:-}" = bench ]; then
  install_list scripts/bench-packages.txt
  # The benchmarks start their own servers in namespaces; the host daemons these packages
  # start would hold ports 69 and 80 that pxetui needs on a real interface.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now tftpd-hpa.service nginx.service 2>/dev/null || true
  fi
fi

# (Re)install when the venv is missing or broken, or the build inputs changed (the C pump).
stamp=.venv/.pxetui-installed
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pxetui, textual, pytest' 2>/dev/null \
   || [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
   || [ pxetui/tftp/_pump.c -nt "$stamp" ]; then
  echo "setup.sh: creating .venv and installing pxetui with its test extras"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test]"
  touch "$stamp"
fi

# netconsole for the lab kernel (docs/CLIENT-LOGS.md, tests/e2e/test_installer_logs.py): Debian
# builds it as a module, shipped in the linux-image package of the installer kernel's exact
# version (the lab boots that kernel; its initrd carries no netconsole.ko).
kver=$(.venv/bin/python -c 'from pxetui.lab.content import kernel_version; print(kernel_version())')
if [ ! -e "/lib/modules/$kver/kernel/drivers/net/netconsole.ko" ]; then
  echo "setup.sh: installing linux-image-$kver for the lab kernel's netconsole module"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "linux-image-$kver"
fi

# The unprivileged user every service drops to once its sockets are open (docs/SECURITY.md).
if ! id -u pxetui >/dev/null 2>&1; then
  echo "setup.sh: creating the system user pxetui (services run as it)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pxetui
fi
# It must read pxetui's code and Python's (a checkout or an interpreter under /root, say).
.venv/bin/python -m pxetui.privileges grant-code pxetui

case "${1:-}" in
  lab)
    shift
    exec .venv/bin/pxetui lab "$@"
    ;;
  test)
    shift
    export CI="${CI:-}"
    # Two workers that steal from each other: an idle one takes the next test from the busy
    # one's queue, so two QEMU boots can overlap instead of one worker running every VM while
    # the other waits (about 20 minutes instead of 35 on 2 cores). Pass -n 0 to run in order.
    exec .venv/bin/python -m pytest -p no:cacheprovider -n 2 --dist worksteal "$@"
    ;;
  "")
    echo "setup.sh: done. Run .venv/bin/pxetui --help"
    ;;
  bench)
    echo "setup.sh: done. Run a benchmark, e.g. .venv/bin/python bench/tftp/run.py (see README)"
    ;;
  *)
    echo "usage: bash scripts/setup.sh [lab|test|bench] [args...]" >&2
    exit 2
    ;;
esac
