"""Runs each client profile's steps in order. A step that needs something an earlier step did
not establish is skipped, with the reason; every step is bounded in time; a client's replay
never stops the next one's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from authgate.doctor.findings import ClientReport, DoctorReport, Finding, Verdict, fail, skip
from authgate.doctor.flow import DoctorOptions, Flow, free_loopback_port
from authgate.doctor.profiles import ClientProfile, select
from authgate.doctor.steps import authorization as authz
from authgate.doctor.steps import cors, discovery, mcp, registration
from authgate.doctor.wire import Wire
from authgate.errors import Unreachable

StepFunc = Callable[[Flow], Awaitable[Verdict]]


def _always(_: ClientProfile) -> bool:
    return True


def _browser(profile: ClientProfile) -> bool:
    return profile.browser_origin is not None


def _modern(profile: ClientProfile) -> bool:
    return profile.modern


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    run: StepFunc
    needs: tuple[str, ...] = ()  # Flow fields that must be set for the step to run
    applies: Callable[[ClientProfile], bool] = _always


STEPS: tuple[Step, ...] = (
    Step("url.https", discovery.url_https),
    Step("mcp.challenge", discovery.mcp_challenge),
    Step("cors.mcp", cors.cors_mcp, applies=_browser),
    Step("mcp.www_authenticate", discovery.www_authenticate, ("signin",)),
    Step("prm.discovery", discovery.prm_discovery, ("signin",)),
    Step("prm.resource", discovery.prm_resource, ("prm",)),
    Step("as.discovery", discovery.as_discovery, ("resource", "as_url")),
    Step("as.issuer", discovery.as_issuer, ("as_candidate",)),
    Step("as.metadata", discovery.as_metadata, ("as_meta",)),
    Step("as.pkce", discovery.as_pkce, ("as_meta",)),
    Step("cors.discovery", cors.cors_discovery, ("as_meta",), applies=_browser),
    Step("register", registration.register, ("as_meta", "pkce_ok")),
    Step("authorize", authz.authorize, ("client",)),
    Step("authorize.iss", authz.authorize_iss, ("auth_response",)),
    Step("token", authz.token, ("signin",)),
    Step("token.claims", authz.token_claims, ("access_token",)),
    Step("authorize.resource_variant", authz.resource_variant, ("authorize_ok", "resource")),
    Step("cors.oauth", cors.cors_oauth, ("client",), applies=_browser),
    Step("mcp.initialize", mcp.mcp_initialize, ("access_token",)),
    Step("mcp.tools_list", mcp.mcp_tools_list, ("initialized",)),
    Step("mcp.discover", mcp.mcp_discover, ("access_token",), applies=_modern),
    Step("mcp.invalid_token", mcp.mcp_invalid_token, ("signin",)),
    Step("register.cleanup", registration.cleanup, ("registration",)),
)

FindingSink = Callable[[Finding], None]
ClientSink = Callable[[ClientProfile], None]


def _step_timeout(step: Step, options: DoctorOptions) -> float:
    if step.id == "authorize" and options.credentials == "interactive":
        return options.interactive_timeout + 30
    return options.timeout * 4  # a step makes a few requests, each bounded by `timeout`


async def _run_step(step: Step, flow: Flow, earlier: str | None) -> Verdict:
    """Run `step`, or skip it naming why; `earlier` is the reason of the last skip or failure."""
    lacking = next((n for n in step.needs if getattr(flow, n) is None), None)
    if lacking is not None:
        return skip(flow.missing.get(lacking) or earlier or f"{step.id} cannot run: no {lacking}")
    try:
        async with asyncio.timeout(_step_timeout(step, flow.options)):
            return await step.run(flow)
    except Unreachable as exc:
        return fail(str(exc), "check that the server runs and the URL is right (DNS, port, TLS)")
    except TimeoutError:
        return fail(
            f"no complete answer within {_step_timeout(step, flow.options):g}s",
            "the server is too slow: Claude gives up after 10 s on discovery, registration and /token",
        )
    except Exception as exc:  # noqa: BLE001 - a doctor bug must not hide the other findings
        return fail(f"doctor error: {type(exc).__name__}: {exc}", "report this as an authgate doctor bug")


async def run_client(
    profile: ClientProfile, options: DoctorOptions, wire: Wire, on_finding: FindingSink | None = None
) -> tuple[ClientReport, Flow]:
    flow = Flow(profile=profile, options=options, wire=wire, url=options.url, port=free_loopback_port())
    report = ClientReport(profile.name, profile.label)
    earlier: str | None = None
    for step in STEPS:
        if not step.applies(profile):
            continue
        verdict = await _run_step(step, flow, earlier)
        if verdict.status == "fail":
            earlier = f"{step.id} failed"
        elif verdict.status == "skip":
            earlier = verdict.seen
        finding = Finding(profile.name, step.id, verdict.status, verdict.seen, verdict.fix)
        report.findings.append(finding)
        if on_finding is not None:
            on_finding(finding)
    return report, flow


async def run_doctor(
    options: DoctorOptions,
    *,
    on_client: ClientSink | None = None,
    on_finding: FindingSink | None = None,
    verify: object = True,
) -> DoctorReport:
    """Replay every selected client against `options.url`; `verify` is httpx's TLS setting."""
    report = DoctorReport(url=options.url)
    wire = Wire(timeout=options.timeout, verify=verify)
    try:
        for profile in select(options.clients):
            if on_client is not None:
                on_client(profile)
            client_report, flow = await run_client(profile, options, wire, on_finding)
            report.clients.append(client_report)
            if flow.registration is not None:
                report.registrations.append(flow.registration)
    finally:
        await wire.aclose()
    return report
