"""Mapping between store models and table rows: JSON arrays come back as tuples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy.engine import RowMapping

from authgate.store.models import (
    AuthorizationCode,
    Client,
    ClientSource,
    Consent,
    KeyState,
    LiveGrant,
    RefreshFamily,
    RefreshToken,
    SigningKey,
    User,
)


def client_values(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "metadata": client.metadata,
        "created_at": client.created_at,
        "last_used_at": client.last_used_at,
        "client_secret_hash": client.client_secret_hash,
        "client_secret_expires_at": client.client_secret_expires_at,
        "source": client.source,
        "registration_token_hash": client.registration_token_hash,
    }


def to_client(row: RowMapping) -> Client:
    return Client(
        client_id=row["client_id"],
        metadata=dict(row["metadata"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        client_secret_hash=row["client_secret_hash"],
        client_secret_expires_at=int(row["client_secret_expires_at"]),
        source=cast(ClientSource, row["source"]),
        registration_token_hash=row.get("registration_token_hash"),
    )


def user_values(user: User) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "username": user.username,
        "password_hash": user.password_hash,
        "created_at": user.created_at,
        "roles": list(user.roles),
        "session_version": user.session_version,
    }


def to_user(row: Mapping[Any, Any]) -> User:
    return User(
        user_id=row["user_id"],
        username=row["username"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        roles=tuple(row["roles"] or ()),
        session_version=int(row["session_version"]),
    )


def code_values(code: AuthorizationCode) -> dict[str, Any]:
    return {
        "code_hash": code.code_hash,
        "client_id": code.client_id,
        "user_id": code.user_id,
        "redirect_uri": code.redirect_uri,
        "scopes": list(code.scopes),
        "resources": list(code.resources),
        "code_challenge": code.code_challenge,
        "family_id": code.family_id,
        "created_at": code.created_at,
        "expires_at": code.expires_at,
        "auth_time": code.auth_time,
        "consumed_at": code.consumed_at,
    }


def to_code(row: Mapping[Any, Any]) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row["code_hash"],
        client_id=row["client_id"],
        user_id=row["user_id"],
        redirect_uri=row["redirect_uri"],
        scopes=tuple(row["scopes"]),
        resources=tuple(row["resources"]),
        code_challenge=row["code_challenge"],
        family_id=row["family_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        auth_time=row["auth_time"],
        consumed_at=row["consumed_at"],
    )


def family_values(family: RefreshFamily) -> dict[str, Any]:
    return {
        "family_id": family.family_id,
        "client_id": family.client_id,
        "user_id": family.user_id,
        "scopes": list(family.scopes),
        "resources": list(family.resources),
        "created_at": family.created_at,
        "revoked_at": family.revoked_at,
        "revoked_reason": family.revoked_reason,
    }


def to_family(row: Mapping[Any, Any]) -> RefreshFamily:
    return RefreshFamily(
        family_id=row["family_id"],
        client_id=row["client_id"],
        user_id=row["user_id"],
        scopes=tuple(row["scopes"]),
        resources=tuple(row["resources"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
    )


def to_live_grant(row: RowMapping) -> LiveGrant:
    metadata = row["metadata"] or {}  # None: a CIMD client, not stored
    return LiveGrant(
        family_id=row["family_id"],
        client_id=row["client_id"],
        client_name=str(metadata.get("client_name") or row["client_id"]),
        user_id=row["user_id"],
        username=row["username"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
    )


def token_values(token: RefreshToken) -> dict[str, Any]:
    return {
        "token_hash": token.token_hash,
        "family_id": token.family_id,
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "rotated_at": token.rotated_at,
        "successor": token.successor,
    }


def to_token(row: Mapping[Any, Any]) -> RefreshToken:
    successor = row["successor"]
    return RefreshToken(
        token_hash=row["token_hash"],
        family_id=row["family_id"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        rotated_at=row["rotated_at"],
        # asyncpg may hand back a memoryview-like buffer; the model promises bytes.
        successor=bytes(successor) if successor is not None else None,
    )


def to_consent(row: RowMapping) -> Consent:
    return Consent(
        user_id=row["user_id"],
        client_id=row["client_id"],
        scopes=tuple(row["scopes"]),
        resources=tuple(row["resources"]),
        granted_at=row["granted_at"],
    )


def key_values(key: SigningKey) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "alg": key.alg,
        "state": key.state,
        "public_jwk": key.public_jwk,
        "private_jwk_encrypted": key.private_jwk_encrypted,
        "created_at": key.created_at,
        "activated_at": key.activated_at,
        "retired_at": key.retired_at,
    }


def to_key(row: RowMapping) -> SigningKey:
    return SigningKey(
        kid=row["kid"],
        alg=row["alg"],
        state=cast(KeyState, row["state"]),
        public_jwk=dict(row["public_jwk"]),
        private_jwk_encrypted=bytes(row["private_jwk_encrypted"]),
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        retired_at=row["retired_at"],
    )
