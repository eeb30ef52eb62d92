"""The probes of `authgate idp check` in order, then the profile's known traps."""

from __future__ import annotations

import httpx

from authgate.idp.check.documents import check_discovery, check_issuer_shape
from authgate.idp.check.id_jag import check_id_jag
from authgate.idp.check.metadata import check_metadata, check_scopes
from authgate.idp.check.registration import check_registration
from authgate.idp.check.report import CheckOptions, CheckReport
from authgate.idp.check.resource import check_resource
from authgate.idp.profiles import IdpProfile, get_profile

__all__ = ["add_profile_traps", "run_check"]


def add_profile_traps(report: CheckReport, profile: IdpProfile) -> None:
    reported = {f.fix for f in report.findings}
    for trap in profile.traps:
        if trap.fix not in reported and trap.code not in report.settled:
            report.add(trap.code, "info", f"known {profile.title} trap: {trap.problem}", trap.fix)


async def run_check(options: CheckOptions, http: httpx.AsyncClient) -> CheckReport:
    profile = get_profile(options.profile)
    report = CheckReport(options.issuer, profile.name)
    check_issuer_shape(report, profile)
    meta = await check_discovery(report, http, profile)
    if meta is not None:
        check_metadata(report, meta, profile)
        check_scopes(report, meta, options.scopes, profile)
        if options.register:
            await check_registration(report, meta, http, profile)
        await check_resource(report, options, meta, http, profile)
        if options.id_jag:
            check_id_jag(report, meta)
    add_profile_traps(report, profile)
    return report
