#!/usr/bin/env bash
# What the benchmarks in bench/ need beyond the test venv: wrk (load generator) and taskset
# (util-linux), from Debian's packages, installed only when missing. Run as root or with sudo.
set -euo pipefail
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
        || { echo "ERROR: step 'install ${missing[*]}' failed: run as root (or with sudo)" >&2; exit 2; }
fi
wrk --version 2>&1 | head -1 || true
