"""`authgate clients add`: a machine client made by the operator — with a secret shown once, or
with its public keys (`--jwks` / `--jwks-uri`, private_key_jwt: no secret exists)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from authgate.config.settings import Settings
from authgate.errors import ConfigError, InvalidClientMetadata
from authgate.store.protocols import ClientStore

__all__ = ["add_machine_client", "client_scopes"]

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # oauth/jwt_bearer.py, not imported: CLI start cost


def client_scopes(settings: Settings, values: list[str]) -> list[str]:
    """`--scopes "a b"`, `--scopes a,b` or repeated; each must be one the server offers."""
    from authgate.policy.model import offered_scopes

    wanted = list(dict.fromkeys(s for v in values for s in re.split(r"[\s,]+", v) if s))
    offered = offered_scopes(settings)
    if not wanted or (unknown := [s for s in wanted if s not in offered]):
        problem = "no scope given" if not wanted else f"{', '.join(unknown)} is not a scope this server offers"
        raise ConfigError(
            "--scopes",
            problem,
            f"use some of: {' '.join(offered)} (run with the settings of "
            "`authgate serve`; the policy's tool_scopes add scopes)",
        )
    return wanted


def _check_text(flag: str, value: str, limit: int) -> str:
    if not value.strip() or len(value) > limit or _UNPRINTABLE.search(value):
        raise ConfigError(
            flag,
            f"{value!r} is empty, longer than {limit} characters or holds control characters",
            "use a short printable name",
        )
    return value


async def add_machine_client(args: argparse.Namespace, settings: Settings, store: ClientStore) -> int:
    from authgate.oauth.registration import machine_client

    name = _check_text("NAME", args.name, 100)
    subject = _check_text("--subject", args.subject, 255) if args.subject is not None else None
    scopes = client_scopes(settings, args.client_scopes)
    grant = JWT_BEARER if args.grant == "jwt-bearer" else "client_credentials"
    keys = _client_keys(args)
    try:
        client, secret = machine_client(name, scopes, subject, time.time(), grant, keys)
    except InvalidClientMetadata as exc:
        flag = "--jwks" if args.jwks else "--jwks-uri"
        raise ConfigError(flag, str(exc), "give the client's public keys: a JWK Set file, or an https URL") from None
    await store.add_client(client)  # outside max_clients: that cap bounds open registration
    print(f"client_id\t{client.client_id}" + (f"\nclient_secret\t{secret}" if secret else ""))
    assertion = "-d assertion=JWT " if grant == JWT_BEARER else ""
    if secret:
        how = (
            "The secret is shown only this once: authgate keeps only its hash.\nGet a token: curl -u CLIENT_ID:SECRET "
        )
    else:  # RFC 7523 §2.2: a JWT it signs with its key, aud = the issuer (docs/clients.md)
        how = (
            "It authenticates with private_key_jwt: no secret exists.\nGet a token: curl -d client_id=CLIENT_ID "
            "-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer "
            f"-d client_assertion=SIGNED_JWT_WITH_AUD_{settings.urls.issuer} "
        )
    print(
        f"added machine client {name!r} (scopes: {' '.join(scopes)}; subject: {client.metadata['subject']}). "
        f"{how}-d grant_type={grant} {assertion}-d resource={settings.urls.resource} {settings.urls.issuer}/token",
        file=sys.stderr,
    )
    return 0


def _client_keys(args: argparse.Namespace) -> dict[str, Any] | None:
    """`--jwks FILE` (a JWK Set of public keys) or `--jwks-uri URL`, as registration metadata."""
    if args.jwks_uri:
        return {"jwks_uri": args.jwks_uri}
    if not args.jwks:
        return None
    try:
        with open(args.jwks, encoding="utf-8") as handle:
            return {"jwks": json.loads(handle.read(1 << 20))}
    except (OSError, ValueError) as exc:
        raise ConfigError("--jwks", f"cannot read {args.jwks} as JSON ({exc})", "give a JSON JWK Set file") from None
