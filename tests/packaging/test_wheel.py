"""Issue 13 done-when 7: authgate installs as users install it. The sdist and the wheel are
built as `python -m build` builds them (the wheel from the sdist), hold every file of the
package (templates, migrations, pinned CIMD documents, the sample corpus: a file left out
breaks only the installed copy, never the editable one the other tests use), and the wheel
installed into a fresh venv (no system site-packages, nothing of this checkout on its path)
runs `authgate --version` and `authgate serve` with the embedded defaults: /health, the
metadata, an HTML page rendered from a template, a clean stop.

Needs PyPI or pip's cache for the build backend and the wheel's dependencies: unavailable,
the test is skipped (failed under CI=true)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from authgate._version import __version__
from support import requirements as req
from support.needs import unavailable
from support.ports import free_port

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "authgate"
BUILD_TIMEOUT = 180.0
INSTALL_TIMEOUT = 300.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path


def _run(args: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload, no-any-return]


def _package_files() -> set[str]:
    """Every file of src/authgate a build must ship, as `authgate/…` (what git ignores aside)."""
    listed = _run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "src/authgate"], timeout=30, cwd=REPO
    )
    if listed.returncode == 0 and listed.stdout.strip():
        names = {line.removeprefix("src/") for line in listed.stdout.splitlines()}
        return {n for n in names if (REPO / "src" / n).is_file()}  # a file deleted but not yet committed
    return {  # not a git checkout
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    done = _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], timeout=BUILD_TIMEOUT)
    if done.returncode != 0:
        if "No module named build" in done.stderr:
            unavailable("the `build` package is missing: pip install -e '.[test]'")
        if "Could not" in done.stderr + done.stdout and "hatchling" in done.stderr + done.stdout:
            unavailable(f"cannot install the build backend (is PyPI reachable?):\n{done.stderr[-2000:]}")
        pytest.fail(f"python -m build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    wheels, sdists = sorted(out.glob("authgate-*.whl")), sorted(out.glob("authgate-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return Built(wheels[0], sdists[0])


@pytest.mark.requirement(req.ISSUE13_WHEEL_INSTALLS_AND_SERVES)
def test_the_wheel_and_the_sdist_hold_every_package_file(built: Built) -> None:
    expected = _package_files()
    assert {f for f in expected if f.endswith(".html")}, "no template found in src/authgate"
    with zipfile.ZipFile(built.wheel) as wheel:
        in_wheel = {n for n in wheel.namelist() if n.startswith("authgate/")}
        entry_points = wheel.read(f"authgate-{__version__}.dist-info/entry_points.txt").decode()
    assert sorted(expected - in_wheel) == [], "package files missing from the wheel"
    assert sorted(n for n in in_wheel - expected if not n.endswith(".pyc")) == [], "wheel files not in the source"
    for kind in ("server/templates/", "store/sql/migrations/versions/", "doctor/data/", "kb/sample/"):
        assert any(n.startswith(f"authgate/{kind}") for n in in_wheel), kind
    assert "authgate = authgate.cli.main:main" in entry_points

    root = built.sdist.name.removesuffix(".tar.gz")
    with tarfile.open(built.sdist) as sdist:
        in_sdist = {n.removeprefix(f"{root}/") for n in sdist.getnames()}
    assert sorted(f"src/{f}" for f in expected if f"src/{f}" not in in_sdist) == [], "files missing from the sdist"
    assert {"pyproject.toml", "README.md", "PKG-INFO"} <= in_sdist


def _environment(**extra: str) -> dict[str, str]:
    """A user's shell: this machine's settings (proxy, pip's index and cache), but nothing that
    puts this checkout or its venv on the path, and no AUTHGATE_* setting."""
    own_venv = str(Path(sys.executable).parent)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AUTHGATE_", "PYTHON")) and name not in ("VIRTUAL_ENV", "PIP_USER")
    }
    env["PATH"] = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != own_venv)
    return env | extra


def _fresh_venv(where: Path, wheel: Path, env: dict[str, str]) -> Path:
    venv = where / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], timeout=120, env=env, cwd=where)
    assert made.returncode == 0, made.stderr
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    # --no-compile: no .pyc for every dependency up front (~a third of the time); serve compiles what it imports
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-compile", "-q"]
    pip.append(str(wheel))
    installed = _run(pip, timeout=INSTALL_TIMEOUT, env=env, cwd=where)
    if installed.returncode != 0:
        text = installed.stdout + installed.stderr
        if any(s in text for s in ("No matching distribution", "Could not fetch", "NewConnectionError", "timed out")):
            unavailable(f"cannot install the wheel's dependencies (is PyPI reachable?):\n{text[-2000:]}")
        pytest.fail(f"pip install {wheel.name} failed:\n{text[-4000:]}")
    return venv


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"authgate serve (from the wheel) exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(
        f"authgate serve (from the wheel) gave no /health within {START_TIMEOUT:g}s:\n{log.read_text()[-4000:]}"
    )


@pytest.mark.requirement(req.ISSUE13_WHEEL_INSTALLS_AND_SERVES)
def test_the_wheel_installs_into_a_fresh_venv_and_serves(built: Built, tmp_path: Path) -> None:
    env = _environment()
    started = time.monotonic()
    venv = _fresh_venv(tmp_path, built.wheel, env)
    install_seconds = time.monotonic() - started
    authgate = str(venv / "bin" / "authgate")

    version = _run([authgate, "--version"], timeout=60, env=env, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"authgate {__version__}", version
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import authgate; print(authgate.__file__)"], 60, env=env, cwd=tmp_path
    )
    assert where.stdout.strip().startswith(str(venv)), where  # the installed copy, not this checkout

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    serve_env = env | {"AUTHGATE_DATA_DIR": str(data_dir), "AUTHGATE_PORT": str(port), "AUTHGATE_PUBLIC_URL": url}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [authgate, "serve"], env=serve_env, cwd=tmp_path, stdout=out, stderr=out, start_new_session=True
        )
    try:
        _wait_healthy(url, proc, log)
        metadata = httpx.get(f"{url}/.well-known/oauth-authorization-server", timeout=10)
        assert metadata.status_code == 200 and metadata.json()["issuer"] == url
        page = httpx.get(f"{url}/authorize", params={"client_id": "nobody"}, timeout=10)  # the error template
        assert page.status_code == 400 and page.text.lstrip().lower().startswith("<!doctype html>"), page.text[:300]
        assert (data_dir / "initial-admin-password").is_file()  # the first start ran (migrations, first user)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=STOP_TIMEOUT)
    text = log.read_text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert "protecting the built-in knowledge base" in text  # the start line of this version
    print(f"fresh venv + pip install of the wheel: {install_seconds:.1f}s")
