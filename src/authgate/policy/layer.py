"""`PolicyLayer`: the policy, its enforcer, its anonymous gate and its audit log for one
running authgate, built once the store is open (`server/app.py`)."""

from __future__ import annotations

from starlette.types import ASGIApp

from authgate.audit.log import AuditLog
from authgate.config.settings import Settings
from authgate.policy.clients import ClientRecognizer
from authgate.policy.enforcer import AnonymousGate, PolicyEnforcer
from authgate.policy.model import Policy
from authgate.store.protocols import AuditStore


class PolicyLayer:
    def __init__(self, settings: Settings, audit: AuditStore | None) -> None:
        """`audit` None (external IdP mode: no database): the policy without an audit trail."""
        self.settings = settings
        self.policy = Policy.from_settings(settings)
        self.clients = ClientRecognizer(settings.tool_error_clients)
        self.audit = AuditLog(audit) if audit is not None else None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        return PolicyEnforcer(
            app,
            self.policy,
            resource_metadata=self.settings.urls.prm_url,
            clients=self.clients,
            audit=self.audit,
            audit_arguments=self.settings.audit_arguments,
            max_body=self.settings.mcp_max_body_bytes,
        )

    @property
    def anonymous(self) -> AnonymousGate | None:
        """The hook for BearerGuard, only when some operation is anonymous: otherwise every
        request without a token gets the 401 challenge, its body unread."""
        return AnonymousGate(self.policy, self.clients) if self.policy.has_anonymous else None

    async def aclose(self) -> None:
        if self.audit is not None:
            await self.audit.aclose()
