"""A real Keycloak for the tests (issue 17): fetched with Maven, cached outside the repo, run by a JDK
the release supports, started once per test session in dev mode, realms imported from tests/.

Fetch (`python tests/support/keycloak.py fetch`, scripts/test.sh's Keycloak stage, or the fixture on
first use): `mvn dependency:copy` of org.keycloak:keycloak-quarkus-dist:VERSION:tar.gz into Maven's
local repository and the cache ($AUTHGATE_KEYCLOAK_CACHE, default ~/.cache/authgate/keycloak), then
unpacked there to keycloak-VERSION. Idempotent (a finished tree is reused; a lock file serialises two
fetches; a half-unpacked tree is never used), every step bounded.

Java: Keycloak 26.7's supported configurations are OpenJDK 17, 21 and 25 (the newest recommended);
the newest of those on the machine is used (JAVA_HOME for Keycloak's process only).

Start: `kc.sh start-dev --db=dev-mem` on free loopback ports (http and management, `/health/ready`),
`-Xmx512m`, a bootstrap admin from the environment with a random password; realms are then created
through the admin REST API from the JSON files given (`import_realm`), with `${NAME}` placeholders
filled in. Anything missing (Maven, Java, the download) makes the caller skip — under CI=true fail —
with one line naming what failed and the fix.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from support.authgate_server import AuthgateServer

VERSION = "26.7.3"  # the newest 26.7.x patch Maven Central serves here (26.7.4 is not)
ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{VERSION}:tar.gz"
SUPPORTED_JAVA = (17, 21, 25)  # keycloak.org/server/supported-configurations (26.7)
FETCH_TIMEOUT = 900.0
START_TIMEOUT = 240.0  # start-dev re-augments at every start: ~40 s + ~30 s on 2 busy cores (< pytest timeout 300 s)
STOP_TIMEOUT = 30.0
ADMIN_USER = "admin"


class KeycloakUnavailable(Exception):
    """One line: what failed and the fix."""


def cache_dir() -> Path:
    return Path(os.environ.get("AUTHGATE_KEYCLOAK_CACHE") or Path.home() / ".cache" / "authgate" / "keycloak")


def dist_home() -> Path:
    return cache_dir() / f"keycloak-{VERSION}"


def fetch(log: Any = print) -> Path:
    """The unpacked distribution, fetched and unpacked when not yet cached."""
    home = dist_home()
    if (home / "bin" / "kc.sh").exists():
        return home
    if not shutil.which("mvn"):
        raise KeycloakUnavailable(
            f"fetch Keycloak {VERSION}: mvn is not on PATH (apt-get install maven, or run bash scripts/test.sh)"
        )
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second fetcher waits, then finds the tree
        if (home / "bin" / "kc.sh").exists():
            return home
        started = time.monotonic()
        command = ["mvn", "-B", "-q", "dependency:copy", f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={cache}"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=FETCH_TIMEOUT, cwd=cache)
        except subprocess.TimeoutExpired:
            raise KeycloakUnavailable(
                f"fetch Keycloak {VERSION}: `{' '.join(command)}` took over {FETCH_TIMEOUT:.0f} s "
                "(check that Maven Central is reachable, then rerun)"
            ) from None
        archive = cache / f"keycloak-quarkus-dist-{VERSION}.tar.gz"
        if done.returncode != 0 or not archive.exists():
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise KeycloakUnavailable(
                f"fetch Keycloak {VERSION}: `{' '.join(command)}` failed ({tail}); check that Maven Central "
                "is reachable and the version is served, then rerun"
            )
        fetched = time.monotonic() - started
        partial = cache / f".unpacking-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="tar")
        (partial / f"keycloak-{VERSION}").rename(home)  # atomic: a tree is whole or absent
        shutil.rmtree(partial, ignore_errors=True)
        archive.unlink()  # Maven's local repository keeps its own copy
        log(f"Keycloak {VERSION}: fetched in {fetched:.0f} s, unpacked in {time.monotonic() - started - fetched:.0f} s")
    return home


def java_major(java: Path) -> tuple[int, str] | None:
    try:
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (done.stderr or done.stdout).strip().splitlines()[:1]
    match = re.search(r'version "(\d+)(?:\.(\d+))?', first[0]) if first else None
    if not match:
        return None
    major = int(match.group(1))
    return (int(match.group(2) or 0) if major == 1 else major), first[0]


def pick_java() -> tuple[Path, str]:
    """JAVA_HOME of the newest JDK on the machine that Keycloak supports, and its version line."""
    homes: set[Path] = set()
    for candidate in (os.environ.get("JAVA_HOME"), *map(str, Path("/usr/lib/jvm").glob("*"))):
        if candidate and (Path(candidate) / "bin" / "java").exists():
            homes.add(Path(candidate).resolve())
    on_path = shutil.which("java")
    if on_path:
        homes.add(Path(on_path).resolve().parents[1])
    found: list[tuple[int, Path, str]] = []
    for home in sorted(homes):
        version = java_major(home / "bin" / "java")
        if version:
            found.append((version[0], home, version[1]))
    usable = [f for f in found if f[0] in SUPPORTED_JAVA]
    if not usable:
        seen = ", ".join(f"Java {major} ({home})" for major, home, _ in found) or "no Java"
        raise KeycloakUnavailable(
            f"Keycloak {VERSION} needs OpenJDK {', '.join(map(str, SUPPORTED_JAVA))}; found {seen} "
            "(apt-get install openjdk-17-jdk-headless)"
        )
    major, home, line = max(usable)
    return home, line


@dataclass
class Keycloak:
    """One Keycloak process in dev mode; `issuer(realm)`, `admin()` and `import_realm`."""

    home: Path
    java_home: Path
    workdir: Path
    http_port: int
    management_port: int
    features: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()  # e.g. --truststore-paths=CA.pem
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def issuer(self, realm: str) -> str:
        return f"{self.url}/realms/{realm}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "keycloak.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "JAVA_HOME": str(self.java_home),
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            "JAVA_OPTS_KC_HEAP": "-Xms64m -Xmx512m",
        }
        args = [
            str(self.home / "bin" / "kc.sh"),
            "start-dev",
            "--db=dev-mem",
            "--http-host=127.0.0.1",
            f"--http-port={self.http_port}",
            "--health-enabled=true",
            f"--http-management-port={self.management_port}",
        ]
        if self.features:
            args.append(f"--features={','.join(self.features)}")
        args.extend(self.extra_args)
        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started

    def _wait_ready(self, started: float) -> None:
        ready = f"http://127.0.0.1:{self.management_port}/health/ready"
        with httpx.Client(timeout=5.0) as http:
            while time.monotonic() - started < START_TIMEOUT:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise KeycloakUnavailable(
                        f"Keycloak {VERSION} exited with {self.process.returncode} while starting: "
                        f"{self.log_tail()} (full log: {self.log_path})"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(ready).status_code == 200:
                        return
                time.sleep(1.0)
        raise KeycloakUnavailable(
            f"Keycloak {VERSION} was not ready at {ready} within {START_TIMEOUT:.0f} s: {self.log_tail()} "
            f"(full log: {self.log_path})"
        )

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def admin(self) -> httpx.Client:
        """An httpx client on the admin REST API (`/admin/realms/...`) with a fresh admin token."""
        token = httpx.post(
            f"{self.url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": ADMIN_USER,
                "password": self.admin_password,
            },
            timeout=30.0,
        ).json()["access_token"]
        return httpx.Client(
            base_url=f"{self.url}/admin/realms", headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )

    def import_realm(self, path: Path, values: dict[str, str]) -> str:
        """Create the realm a spec file describes (see tests/idp/keycloak/realms/README.md)."""
        text = path.read_text()
        for name, value in values.items():
            text = text.replace("${" + name + "}", value)
        spec = json.loads(text)
        with self.admin() as admin:
            _create_realm(admin, spec)
        return str(spec["realm"]["realm"])


@dataclass(frozen=True)
class KeycloakSession:
    server: Keycloak
    mcp_port: int
    values: dict[str, str]  # what the realm files' ${NAME} placeholders were filled with
    standin: str = ""  # https://127.0.0.1:PORT serving the pinned CIMD documents (Keycloak trusts its CA)
    standin_ca: str = ""  # that stand-in's test CA (PEM): what an authgate fetching the documents must trust

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.mcp_port}/mcp"

    def issuer(self, realm: str = "mcp") -> str:
        return self.server.issuer(realm)

    @property
    def checker_secret(self) -> str:
        return self.values["CHECKER_SECRET"]

    @property
    def user_password(self) -> str:
        return self.values["USER_PASSWORD"]


CHECKER_ID = "checker"  # the realms' confidential client allowed client_credentials


def _ok(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 300:
        raise KeycloakUnavailable(f"Keycloak admin API: {what} → HTTP {response.status_code} {response.text[:300]}")
    return response


def _create_realm(admin: httpx.Client, spec: dict[str, Any]) -> None:
    realm = spec["realm"]["realm"]
    _ok(admin.post("", json=spec["realm"]), f"create realm {realm}")  # default client scopes come with it
    for scope in spec.get("clientScopes", []):
        _ok(admin.post(f"/{realm}/client-scopes", json=scope), f"create client scope {scope['name']}")
    scopes = {s["name"]: s for s in _ok(admin.get(f"/{realm}/client-scopes"), "list scopes").json()}
    scope_ids = {name: scope["id"] for name, scope in scopes.items()}
    for name, attributes in spec.get("clientScopeAttributes", {}).items():  # Keycloak's own scopes
        scope = scopes[name]
        scope.setdefault("attributes", {}).update(attributes)
        _ok(admin.put(f"/{realm}/client-scopes/{scope['id']}", json=scope), f"attributes of scope {name}")
    for kind, key in (("default", "defaultDefaultClientScopes"), ("optional", "defaultOptionalClientScopes")):
        for name in spec.get(key, []):
            _ok(admin.put(f"/{realm}/default-{kind}-client-scopes/{scope_ids[name]}"), f"{kind} scope {name}")
    policies = spec.get("registrationPolicies", {})
    if policies:
        params = {"type": "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy"}
        for component in _ok(admin.get(f"/{realm}/components", params=params), "list policies").json():
            key = f"{component['name']}@{component.get('subType')}"
            if key in policies:
                component["config"].update(policies[key])
                _ok(admin.put(f"/{realm}/components/{component['id']}", json=component), f"policy {key}")
    if spec.get("addRegistrationPolicies"):
        realm_id = _ok(admin.get(f"/{realm}"), "read realm").json()["id"]
        for policy in spec["addRegistrationPolicies"]:
            component = {
                **policy,
                "parentId": realm_id,
                "providerType": "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy",
            }
            _ok(admin.post(f"/{realm}/components", json=component), f"add policy {policy['name']}")
    for kind in ("profiles", "policies"):  # client policies (e.g. CIMD's condition and executor)
        if kind in spec.get("clientPolicies", {}):
            body = {kind: spec["clientPolicies"][kind]}
            _ok(admin.put(f"/{realm}/client-policies/{kind}", json=body), f"client policy {kind}")
    for client in spec.get("clients", []):
        _ok(admin.post(f"/{realm}/clients", json=client), f"create client {client['clientId']}")


@contextlib.contextmanager
def running(workdir: Path, http_port: int, management_port: int, features: tuple[str, ...] = ()) -> Iterator[Keycloak]:
    """Fetch (if needed), pick the JDK, start Keycloak; stopped on exit."""
    home = fetch()
    java_home, _ = pick_java()
    server = Keycloak(home, java_home, workdir, http_port, management_port, features)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def external_gate(keycloak: KeycloakSession, workdir: Path, **env: str) -> AuthgateServer:
    """`authgate serve` (support.authgate_server.AuthgateServer, not started) in external mode in
    front of the session's `mcp` realm, on the session's MCP URL: the audience the realm's mapper names."""
    from support.authgate_server import AuthgateServer  # not at the top: `python keycloak.py fetch` runs alone

    url = f"http://127.0.0.1:{keycloak.mcp_port}"
    server = AuthgateServer(
        workdir,
        extra_env={
            "AUTHGATE_AUTH_MODE": "external",
            "AUTHGATE_ISSUER": keycloak.issuer(),
            "AUTHGATE_IDP_PROFILE": "keycloak",
            "AUTHGATE_PORT": str(keycloak.mcp_port),
            "AUTHGATE_PUBLIC_URL": url,
            **env,
        },
    )
    server.port, server.url = keycloak.mcp_port, url
    return server


def point_proxy_client_at(keycloak: KeycloakSession, callback: str) -> None:
    """The realm's `authgate-proxy` client redirects to this authgate's /upstream/callback."""
    with keycloak.server.admin() as admin:
        [client] = admin.get("/mcp/clients", params={"clientId": "authgate-proxy"}).json()
        client["redirectUris"] = [callback]
        _ok(admin.put(f"/mcp/clients/{client['id']}", json=client), "point authgate-proxy at the test's authgate")


def main(argv: list[str]) -> int:
    if argv[1:] != ["fetch"]:
        print("usage: python tests/support/keycloak.py fetch", file=sys.stderr)
        return 2
    try:
        home = fetch()
        java_home, line = pick_java()
    except KeycloakUnavailable as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(f"Keycloak {VERSION} at {home}; Java for it: {java_home} ({line})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
