"""Per-operation authorization: which scopes each tool, resource and prompt needs.

    model.py      the policy itself (framework-free): requirements, implications, roles, anonymity
    operations.py what a POST body asks for; the Mcp-Method / Mcp-Name cross-check
    enforcer.py   what the gate (server/gate.py) runs between the bearer check and the app; anonymity
    lists.py      filtering or marking list results; ChatGPT `securitySchemes`
    responses.py  rewriting JSON and SSE answers on the way out
    answers.py    403 challenges and tool-error answers
    clients.py    which clients want the tool-error form
    layer.py      all of it wired for one running authgate

The policy settings and their start-up checks are in config/policy.py. See docs/policy.md.
"""

from authgate.policy.model import Decision, Operation, Policy, offered_scopes

__all__ = ["Decision", "Operation", "Policy", "offered_scopes"]
