"""`PolicyLayer`: the policy, its enforcer and its audit log for one running authgate, built once
the store is open (`server/app.py`); the gate in front of the MCP endpoint (`server/gate.py`)
asks its `enforcer`."""

from __future__ import annotations

from authgate.audit.log import AuditLog
from authgate.config.settings import Settings
from authgate.policy.clients import ClientRecognizer
from authgate.policy.enforcer import PolicyEnforcer
from authgate.policy.model import Policy
from authgate.store.protocols import AuditStore


class PolicyLayer:
    def __init__(self, settings: Settings, audit: AuditStore | None) -> None:
        """`audit` None (external IdP mode: no database): the policy without an audit trail."""
        self.settings = settings
        self.policy = Policy.from_settings(settings)
        self.clients = ClientRecognizer(settings.tool_error_clients)
        self.audit = AuditLog(audit) if audit is not None else None

    @property
    def enforcer(self) -> PolicyEnforcer | None:
        """What the gate runs on every POST (None: no per-operation policy, a benchmark's guard alone)."""
        return PolicyEnforcer(
            self.policy,
            resource_metadata=self.settings.urls.prm_url,
            clients=self.clients,
            audit=self.audit,
            audit_arguments=self.settings.audit_arguments,
            max_body=self.settings.mcp_max_body_bytes,
        )

    async def aclose(self) -> None:
        if self.audit is not None:
            await self.audit.aclose()
