"""authgate's own Client ID Metadata Document: who authgate is when it is the OAuth client.

draft-ietf-oauth-client-id-metadata-document: the client_id is an https URL with a path, and
the document found there names that URL, string for string, as its `client_id`. authgate serves
it at `{public_url}/oauth/client-metadata.json` (stable: it moves only when public_url does) and
only when public_url is https: an authorization server fetches a CIMD client_id over HTTPS only,
so on plain http (a loopback development setup) there is no document and authgate registers by
DCR instead (`authgate.outbound.registration`).

`token_endpoint_auth_method` is `none`: the draft forbids shared secrets in a document (anyone
can read it), and leaves `none` or a key-based method (`private_key_jwt` with `jwks_uri`). A
key-based method would need a key of its own (the draft asks for `typ` oauth-client-auth+jwt and
RFC 8725's separation; authgate's access-token keys must not sign client assertions), rotated
and published beside the document; until then, authgate is a public client there, protected as
every public client is: PKCE S256, `state` bound to the person's session, and a redirect URI
that is authgate's own HTTPS callback, named in this document and compared exactly by the AS.
"""

from __future__ import annotations

from typing import Any

PATH = "/oauth/client-metadata.json"
CALLBACK_PATH = "/connect/callback"


def document_url(public_url: str) -> str | None:
    """The document's URL (= authgate's client_id at a CIMD AS), or None when public_url is not https."""
    base = public_url.rstrip("/")
    return base + PATH if base.lower().startswith("https://") else None


def client_document(public_url: str, client_name: str = "authgate") -> dict[str, Any] | None:
    """The document served at `document_url(public_url)`; None on plain http."""
    url = document_url(public_url)
    if url is None:
        return None
    base = public_url.rstrip("/")
    return {
        "client_id": url,
        "client_name": client_name,
        "client_uri": base,
        "redirect_uris": [base + CALLBACK_PATH],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
    }
