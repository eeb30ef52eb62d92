"""Access tokens for the benchmarks' load generators."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def machine_token(base: str, data_dir: Path) -> str:
    """A client_credentials token of a machine client made with `authgate clients add`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "authgate",
            "clients",
            "add",
            "bench",
            "--grant",
            "client_credentials",
            "--scopes",
            "mcp",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split("\t", 1) for line in out.splitlines())
    tok = httpx.post(
        f"{base}/token", data={"grant_type": "client_credentials"}, auth=(fields["client_id"], fields["client_secret"])
    )
    return str(tok.json()["access_token"])


def signed_jwt(issuer: str, audience: str, workdir: Path) -> tuple[str, Path]:
    """An RFC 9068 access token (RS256, typ at+jwt, scope `mcp`, one hour) signed by a key made
    here, and the file holding that key's public PEM: for the baselines that verify a JWT
    themselves (the SDK's bearer auth over joserfc, FastMCP's JWTVerifier)."""
    import time
    import uuid

    from joserfc import jwt
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048)
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "bench-user",
        "aud": audience,
        "client_id": "bench",
        "scope": "mcp",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": "bench"}, claims, key, algorithms=["RS256"])
    pem = workdir / f"jwt-{uuid.uuid4().hex[:8]}.pem"
    pem.write_bytes(key.as_pem(private=False))
    return token, pem
