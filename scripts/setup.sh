#!/usr/bin/env bash
# pxetui setup for a fresh Debian 12 / Ubuntu machine, as root.
#   bash scripts/setup.sh lab    install everything, then open pxetui on its lab network
#   bash scripts/setup.sh test   install everything, then run the whole test suite
#   bash scripts/setup.sh        install everything only
# Installs the Debian packages in scripts/debian-packages.txt and a virtualenv in .venv.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages and makes network namespaces)" >&2
  exit 1
fi

pkgs=$(grep -v '^\s*#' scripts/debian-packages.txt | tr '\n' ' ')
missing=$(for p in $pkgs; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
  echo "setup.sh: installing Debian packages: $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends $missing
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

case "${1:-}" in
  lab)
    shift
    exec .venv/bin/pxetui lab "$@"
    ;;
  test)
    shift
    export CI="${CI:-}"
    exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
    ;;
  "")
    echo "setup.sh: done. Run .venv/bin/pxetui --help"
    ;;
  *)
    echo "usage: bash scripts/setup.sh [lab|test] [args...]" >&2
    exit 2
    ;;
esac
