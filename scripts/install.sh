#!/usr/bin/env bash
# Set up everything from scratch: Debian's Fashion-MNIST and PostgreSQL packages, a virtual
# environment in .venv holding exactly the versions of requirements.lock (the CPU build of torch
# included), and this project (editable) on top.
#
# The lock is for CPython 3.11 on x86_64 Linux; refresh it with `bash scripts/lock.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the default data set, and the PostgreSQL server the storage tests start.
APT_PACKAGES=()
[ -d /usr/share/datasets/fashion-mnist ] || APT_PACKAGES+=(dataset-fashion-mnist)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || APT_PACKAGES+=(postgresql)
command -v strace >/dev/null || APT_PACKAGES+=(strace)  # the no-network test
if [ "${#APT_PACKAGES[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys, platform; sys.exit(0 if sys.version_info[:2] == (3, 11) and platform.machine() == "x86_64" else 1)'; then
  echo "error: requirements.lock is for CPython 3.11 on x86_64 Linux, but $PY is $("$PY" -c 'import platform; print(platform.python_version(), platform.machine())')." >&2
  echo "       Set PYTHON=/path/to/python3.11, or refresh the lock for this platform (edit scripts/lock.sh, then bash scripts/lock.sh)." >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
# pip itself at the locked version, then exactly the lock (no resolver, nothing unlisted), then this
# project without dependencies and without build isolation (its build backend, setuptools, is locked).
"${PIP[@]}" install -q "$(grep -E '^pip==' requirements.lock)"
"${PIP[@]}" install -q --no-deps -r requirements.lock
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .
# A venv that held other packages before (an older lock) is brought back to the lock.
EXTRA="$(.venv/bin/python scripts/lock_check.py --extra)"
if [ -n "$EXTRA" ]; then
  echo "removing packages not in requirements.lock: $EXTRA"
  # shellcheck disable=SC2086
  "${PIP[@]}" uninstall -q -y $EXTRA
fi
"${PIP[@]}" check
.venv/bin/python scripts/lock_check.py
echo "installed into .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
