"""The issuer's shape for the profile, and its discovery documents (RFC 8414 and OIDC, `issuer` exact)."""

from __future__ import annotations

from typing import Any

import httpx

from authgate.config.issuers import issuer_problem
from authgate.idp.check.report import CheckReport, trap_fix
from authgate.idp.discovery import Fetched, fetch_all, fetch_document
from authgate.idp.profiles import IdpProfile, get_profile, guess_profile

__all__ = ["check_discovery", "check_issuer_shape"]


def check_issuer_shape(report: CheckReport, profile: IdpProfile) -> None:
    problem = issuer_problem(report.issuer, profile.name)
    if problem:
        report.add("issuer-shape", "fail", problem, "authgate `issuer` = the IdP's issuer, exactly")
    guess = guess_profile(report.issuer)
    if guess and guess != profile.name:
        report.add(
            "profile",
            "warn",
            f"{report.issuer} looks like {get_profile(guess).title}",
            f'authgate `idp_profile = "{guess}"` (and --profile {guess} here)',
        )


def _issuer_mismatch(report: CheckReport, doc: Fetched) -> None:
    named = doc.issuer
    slash = named is not None and named.rstrip("/") == report.issuer.rstrip("/")
    report.add(
        "issuer-mismatch",
        "fail",
        f"{doc.url} names issuer {named!r}, not {report.issuer!r}"
        + (" (they differ only in the trailing slash, which matters)" if slash else ""),
        f'authgate `issuer = "{named}"` if that is the IdP you mean',
    )


async def _check_rfc8414(
    report: CheckReport, docs: list[Fetched], profile: IdpProfile, http: httpx.AsyncClient
) -> None:
    doc = next(d for d in docs if d.kind == "rfc8414")
    if doc.document is not None and doc.issuer == report.issuer:
        report.add("rfc8414", "ok", f"RFC 8414 metadata at {doc.url}")
        return
    if doc.document is not None:
        _issuer_mismatch(report, doc)
        return
    appended = report.issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
    elsewhere = appended != doc.url and (await fetch_document(http, "rfc8414", appended)).document is not None
    report.add(
        "no-rfc8414",
        "warn",
        f"no RFC 8414 document at {doc.url} ({doc.error})"
        + (f"; the IdP serves it path-appended at {appended}, where MCP clients do not look" if elsewhere else "")
        + ": MCP clients since 2025-11-25 fall back to OIDC discovery, older clients find "
        "no authorization server",
        trap_fix(
            profile,
            f"{profile.name}-no-rfc8414",
            "for older clients set authgate "
            "`mirror_as_metadata = true` (see docs/idp/external.md); or enable RFC 8414 metadata "
            "at the IdP",
        ),
    )


def _check_oidc(report: CheckReport, docs: list[Fetched]) -> None:
    oidc = [d for d in docs if d.kind == "oidc"]
    good = next((d for d in oidc if d.document is not None and d.issuer == report.issuer), None)
    if good is not None:
        report.add("oidc-discovery", "ok", f"OpenID Connect discovery at {good.url}")
        return
    wrong = next((d for d in oidc if d.document is not None), None)
    if wrong is not None:
        _issuer_mismatch(report, wrong)
    else:
        report.add(
            "no-oidc-discovery",
            "info",
            "no OpenID Connect discovery document (" + "; ".join(f"{d.url}: {d.error}" for d in oidc) + ")",
        )


async def check_discovery(report: CheckReport, http: httpx.AsyncClient, profile: IdpProfile) -> dict[str, Any] | None:
    """Findings on the discovery documents; the metadata to probe further, if any."""
    docs = await fetch_all(http, report.issuer)
    if all(d.status is None for d in docs):
        report.add(
            "unreachable",
            "fail",
            f"{report.issuer} is unreachable ({docs[0].error})",
            "check the issuer URL and that this machine can reach the IdP",
        )
        return None
    await _check_rfc8414(report, docs, profile, http)
    _check_oidc(report, docs)
    valid = [d.document for d in docs if d.document is not None and d.issuer == report.issuer]
    if not valid and "issuer-mismatch" not in report.codes():
        report.add(
            "no-discovery",
            "fail",
            f"no discovery document found for {report.issuer}",
            "authgate `issuer` = the IdP's issuer URL (its discovery document's `issuer` value)",
        )
    return valid[0] if valid else None
