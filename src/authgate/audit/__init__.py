"""The audit trail: who called which tool, resource or prompt, what was decided, how it went.

`log.AuditLog` writes events (refusals before the answer, allowed calls batched off the hot
path); `events.audit_event` builds one; `authgate audit` (cli/audit_cmd.py) reads them back.
"""

from authgate.audit.events import audit_event
from authgate.audit.log import AuditLog

__all__ = ["AuditLog", "audit_event"]
