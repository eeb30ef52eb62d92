#!/usr/bin/env bash
# What the benchmarks in bench/ need beyond the test venv (`python -m bench all`, docs/benchmarks.md):
#   - wrk (load generator) and taskset (util-linux), from Debian's packages, installed only when
#     missing (as root, or with sudo);
#   - the FastMCP venv, .bench-venv/ (git-ignored; BENCH_VENV overrides the path): FastMCP 4.2.3
#     and uvicorn[standard] from PyPI, never in the project's .venv. The comparison's FastMCP
#     servers run with its interpreter (bench/peers/fastmcp_server.py). Skipped when it already
#     holds what this script asks for (a stamp in the venv).
# Idempotent. Exits non-zero, naming the step, when something cannot be installed.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_VENV="${BENCH_VENV:-$REPO_ROOT/.bench-venv}"
FASTMCP_PINS=("fastmcp==4.2.3" "uvicorn[standard]")

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

# The FastMCP venv: the same interpreter as the project venv's (so both sides run one Python).
base_python() {
    if [ -x "$REPO_ROOT/.venv/bin/python" ]; then
        "$REPO_ROOT/.venv/bin/python" -c 'import sys; print(sys._base_executable)'
    else
        command -v python3
    fi
}
stamp="$BENCH_VENV/.bench-installed-from"
want="$(printf '%s\n' "${FASTMCP_PINS[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$BENCH_VENV/bin/python" -c 'import fastmcp' 2>/dev/null; then
    echo "FastMCP venv $BENCH_VENV already holds ${FASTMCP_PINS[*]}"
else
    py="$(base_python)" || { echo "ERROR: step 'find python3' failed: need python3 >= 3.11" >&2; exit 2; }
    echo "making the FastMCP venv $BENCH_VENV with $py"
    "$py" -m venv "$BENCH_VENV" \
        || { echo "ERROR: step 'python -m venv $BENCH_VENV' failed" >&2; exit 2; }
    "$BENCH_VENV/bin/python" -m pip install --disable-pip-version-check -q "${FASTMCP_PINS[@]}" \
        || { echo "ERROR: step 'pip install ${FASTMCP_PINS[*]}' failed: is PyPI reachable?" >&2; exit 2; }
    echo "$want" > "$stamp"
fi
"$BENCH_VENV/bin/python" -c 'from importlib.metadata import version; print("fastmcp", version("fastmcp"), "mcp", version("mcp"))'
