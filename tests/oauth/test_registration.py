"""RFC 7591 registration validation."""

from __future__ import annotations

import pytest

from authgate.errors import InvalidClientMetadata, InvalidRedirectUri
from authgate.oauth.opaque import digest
from authgate.oauth.registration import machine_client, register
from support import requirements as req

CB = ["https://claude.ai/api/mcp/auth_callback"]


@pytest.mark.requirement(req.RFC7591_3_2_1_CLIENT_INFORMATION)
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_gets_secret_and_expiry_and_only_a_hash_is_kept(method: str) -> None:
    client, body = register({"redirect_uris": CB, "token_endpoint_auth_method": method}, 1000.0)
    assert body["client_secret"] and body["client_secret_expires_at"] == 0
    assert client.client_secret_hash == digest(body["client_secret"])
    assert body["client_secret"] not in repr(client)
    assert body["token_endpoint_auth_method"] == method


def test_public_client_gets_no_secret() -> None:
    client, body = register({"redirect_uris": CB, "token_endpoint_auth_method": "none"}, 1000.0)
    assert "client_secret" not in body and client.client_secret_hash is None


@pytest.mark.requirement(req.RFC7591_2_DEFAULT_AUTH_METHOD)
def test_default_auth_method_is_basic() -> None:
    _, body = register({"redirect_uris": CB}, 1.0)
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"redirect_uris": CB, "token_endpoint_auth_method": "private_key_jwt"}, InvalidClientMetadata),
        ({"redirect_uris": CB, "grant_types": ["implicit"]}, InvalidClientMetadata),
        ({"redirect_uris": CB, "response_types": ["token"]}, InvalidClientMetadata),
        ({"redirect_uris": []}, InvalidRedirectUri),
        ({"redirect_uris": "https://x.example/cb"}, InvalidClientMetadata),
        ({"redirect_uris": ["http://evil.example/cb"]}, InvalidRedirectUri),
        ({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}, InvalidClientMetadata),
        ({"redirect_uris": CB, "application_type": "desktop"}, InvalidClientMetadata),
    ],
)
def test_invalid_metadata_is_refused_with_rfc_7591_errors(body: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        register(body, 1.0)


@pytest.mark.parametrize("grants", [["client_credentials"], ["authorization_code", "client_credentials"]])
def test_open_registration_refuses_client_credentials_naming_the_operator_path(grants: list[str]) -> None:
    body = {"grant_types": grants, "redirect_uris": CB, "token_endpoint_auth_method": "client_secret_post"}
    with pytest.raises(InvalidClientMetadata, match="authgate clients add"):
        register(body, 1.0, ["authorization_code", "refresh_token"])


def test_open_registration_refuses_grants_outside_dcr_grant_types() -> None:
    with pytest.raises(InvalidClientMetadata, match="not open to dynamic registration"):
        register(
            {"redirect_uris": CB, "grant_types": ["authorization_code", "refresh_token"]}, 1.0, ["authorization_code"]
        )
    _, body = register({"redirect_uris": CB}, 1.0, ["authorization_code"])  # the default follows the setting
    assert body["grant_types"] == ["authorization_code"]


def test_machine_client_is_operator_made_with_its_scopes_and_a_hashed_secret() -> None:
    client, secret = machine_client("backup", ["mcp", "kb:read"], None, 5.0)
    assert client.source == "operator" and client.metadata["grant_types"] == ["client_credentials"]
    assert client.metadata["scope"] == "mcp kb:read" and client.metadata["subject"] == client.client_id
    assert client.client_secret_hash == digest(secret) and secret not in str(client)
    assert machine_client("b", ["mcp"], "svc-backup", 5.0)[0].metadata["subject"] == "svc-backup"


def test_unknown_metadata_is_ignored_not_echoed() -> None:
    _, body = register({"redirect_uris": CB, "x_custom": 1, "client_name": "Claude"}, 1.0)
    assert "x_custom" not in body and body["client_name"] == "Claude"


@pytest.mark.requirement(req.MCP_2026_07_28_APPLICATION_TYPE)
def test_application_type_is_respected_and_inferred_when_absent() -> None:
    uri = ["com.example.app:/oauth/callback"]
    _, body = register({"redirect_uris": uri, "token_endpoint_auth_method": "none"}, 1.0)
    assert body["application_type"] == "native"
    with pytest.raises(InvalidRedirectUri):
        register({"redirect_uris": uri, "application_type": "web"}, 1.0)
    _, body = register({"redirect_uris": CB}, 1.0)
    assert body["application_type"] == "web"
