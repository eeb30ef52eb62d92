"""What the 2026-07-28 scenarios of `@modelcontextprotocol/conformance` 0.2.0-alpha.12 ask
of the server under test, added to conformance_upstream.py's `MCPServer` by `add_2026_features`
(each scenario's description, `conformance list --server`, names the tools and prompts):

* `input-required-result-*` (SEP-2322, multi round-trip requests): the
  `test_input_required_result_*` tools and the `test_input_required_result_prompt` prompt
  return an `InputRequiredResult` with the input-request keys the scenarios name, read
  `ctx.input_responses`/`ctx.request_state` on the retry and complete. The SDK seals
  `requestState` (AES-GCM, `RequestStateBoundary`), so a tampered one gets -32602.
* `server-stateless` (SEP-2575): `test_missing_capability` needs the client's `sampling`
  capability and answers -32021 with `requiredCapabilities: {"sampling": {}}` without it;
  `test_trigger_tool_change` / `test_trigger_prompt_change` change a tool/prompt (its
  description) and publish the list-changed event to the open `subscriptions/listen` streams.
* `http-custom-header-server-validation` (SEP-2243): `test_custom_header`'s `region`
  argument carries `x-mcp-header: Region`; the SDK checks `Mcp-Param-Region` against it.
* `json-schema-2020-12` (SEP-1613, SEP-2106): the full schema the scenario lists, with
  `$anchor`, `allOf`/`anyOf` and `if`/`then`/`else` (conformance_upstream.JSON_SCHEMA_2020_12).

Not here: the `tasks-*` scenarios (an extension, never scored): the `mcp` SDK 2.3.0 has no
server side for the tasks extension.
"""

from __future__ import annotations

from itertools import count
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolResult,
    CreateMessageRequest,
    CreateMessageRequestParams,
    ElicitRequest,
    ElicitRequestFormParams,
    InputRequest,
    InputRequiredResult,
    ListRootsRequest,
    SamplingMessage,
    TextContent,
)
from pydantic import Field


def _text(result: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=result)])


def _elicit(message: str, field: str, kind: str = "string") -> InputRequest:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def _sample(text: str, max_tokens: int) -> InputRequest:
    message = SamplingMessage(role="user", content=TextContent(type="text", text=text))
    return CreateMessageRequest(params=CreateMessageRequestParams(messages=[message], max_tokens=max_tokens))


def _answers(ctx: Context) -> dict[str, Any]:
    return dict(ctx.input_responses or {})


def _content(answer: Any) -> dict[str, Any]:
    """An elicitation answer's content ({} for anything else)."""
    content = getattr(answer, "content", None)
    return content if isinstance(content, dict) else {}


def _sampled_text(answer: Any) -> str:
    return str(getattr(getattr(answer, "content", None), "text", ""))


def add_2026_features(server: MCPServer) -> None:
    """Register the tools and prompts the 2026-07-28 scenarios call (see the module doc)."""

    @server.tool(description="Asks for the user's name (input_required, one elicitation).")
    def test_input_required_result_elicitation(ctx: Context) -> CallToolResult | InputRequiredResult:
        answer = _answers(ctx).get("user_name")
        if answer is None:  # first round, or a retry without the answer: ask (again)
            return InputRequiredResult(input_requests={"user_name": _elicit("What is your name?", "name")})
        return _text(f"Hello, {_content(answer).get('name', '')}!")

    @server.tool(description="Samples the client's LLM (input_required, one sampling request).")
    def test_input_required_result_sampling(ctx: Context) -> CallToolResult | InputRequiredResult:
        answer = _answers(ctx).get("capital_question")
        if answer is None:
            return InputRequiredResult(
                input_requests={"capital_question": _sample("What is the capital of France?", 100)}
            )
        return _text(f"LLM response: {_sampled_text(answer)}")

    @server.tool(description="Asks for the client's roots (input_required, roots/list).")
    def test_input_required_result_list_roots(ctx: Context) -> CallToolResult | InputRequiredResult:
        answer = _answers(ctx).get("client_roots")
        if answer is None:
            return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})
        roots = [str(root.uri) for root in getattr(answer, "roots", [])]
        return _text(f"Roots: {', '.join(roots) or '(none)'}")

    @server.tool(description="Round-trips requestState (input_required).")
    def test_input_required_result_request_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        if "confirm" not in _answers(ctx) or ctx.request_state != "confirm-asked":
            return InputRequiredResult(
                input_requests={"confirm": _elicit("Please confirm", "ok", "boolean")},
                request_state="confirm-asked",
            )
        return _text("state-ok: the requestState came back as sent")

    @server.tool(description="Three input requests at once: elicitation, sampling, roots/list.")
    def test_input_required_result_multiple_inputs(ctx: Context) -> CallToolResult | InputRequiredResult:
        answers = _answers(ctx)
        if not {"user_name", "greeting", "client_roots"} <= answers.keys() or ctx.request_state != "three-asked":
            return InputRequiredResult(
                input_requests={
                    "user_name": _elicit("What is your name?", "name"),
                    "greeting": _sample("Generate a greeting", 50),
                    "client_roots": ListRootsRequest(),
                },
                request_state="three-asked",
            )
        name = _content(answers["user_name"]).get("name", "")
        return _text(f"{_sampled_text(answers['greeting'])} {name}".strip())

    @server.tool(description="Two rounds of input_required, the requestState changing between them.")
    def test_input_required_result_multi_round(ctx: Context) -> CallToolResult | InputRequiredResult:
        answers, state = _answers(ctx), ctx.request_state
        if state and state.startswith("round-2:") and "step2" in answers:
            name, color = state.removeprefix("round-2:"), _content(answers["step2"]).get("color", "")
            return _text(f"{name} likes {color}")
        if state == "round-1" and "step1" in answers:
            return InputRequiredResult(
                input_requests={"step2": _elicit("Step 2: What is your favorite color?", "color")},
                request_state=f"round-2:{_content(answers['step1']).get('name', '')}",
            )
        return InputRequiredResult(
            input_requests={"step1": _elicit("Step 1: What is your name?", "name")}, request_state="round-1"
        )

    @server.tool(description="input_required with a requestState the SDK seals (tampering is refused).")
    def test_input_required_result_tampered_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        if ctx.request_state == "untampered" and "confirm" in _answers(ctx):
            return _text("requestState verified")
        return InputRequiredResult(
            input_requests={"confirm": _elicit("Please confirm", "ok", "boolean")}, request_state="untampered"
        )

    @server.tool(description="Asks only for what the client declared it can answer.")
    def test_input_required_result_capabilities(ctx: Context) -> CallToolResult | InputRequiredResult:
        if _answers(ctx):
            return _text("Capabilities respected")
        caps = ctx.client_capabilities
        wanted: dict[str, InputRequest] = {}
        if caps is not None and caps.sampling is not None:
            wanted["capital_question"] = _sample("What is the capital of France?", 100)
        if caps is not None and caps.elicitation is not None:
            wanted["user_name"] = _elicit("What is your name?", "name")
        if caps is not None and caps.roots is not None:
            wanted["client_roots"] = ListRootsRequest()
        if not wanted:
            return _text("The client declared nothing this tool could ask for")
        return InputRequiredResult(input_requests=wanted)

    @server.prompt(description="A prompt that asks for its context first (input_required on prompts/get).")
    def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
        answer = _answers(ctx).get("user_context")
        if answer is None:
            return InputRequiredResult(
                input_requests={"user_context": _elicit("What context should the prompt use?", "context")}
            )
        return [UserMessage(f"Prompt with context: {_content(answer).get('context', '')}")]

    # -- server-stateless (SEP-2575) --------------------------------------------------------

    @server.tool(description="Needs the client's sampling capability; -32021 without it.")
    def test_missing_capability(ctx: Context) -> CallToolResult:
        caps = ctx.client_capabilities
        if caps is None or caps.sampling is None:
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="This tool needs the client's sampling capability",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return _text("The client declared sampling")

    def dynamic_tool() -> str:
        return "A tool whose description test_trigger_tool_change changes"

    def dynamic_prompt() -> str:
        return "A prompt whose description test_trigger_prompt_change changes"

    # The triggers change these two in place (a new description each time), never the set of
    # names: runs in parallel share this server, and another run's tools-list compares names.
    versions = count(1)
    server.add_tool(dynamic_tool, name="test_dynamic_tool", description="Changed 0 times")
    server.add_prompt(Prompt.from_function(dynamic_prompt, name="test_dynamic_prompt", description="Changed 0 times"))

    @server.tool(description="Changes test_dynamic_tool and tells the listen streams.")
    async def test_trigger_tool_change(ctx: Context) -> CallToolResult:
        server.remove_tool("test_dynamic_tool")
        server.add_tool(dynamic_tool, name="test_dynamic_tool", description=f"Changed {next(versions)} times")
        await ctx.notify_tools_changed()  # 2026-07-28: to the subscriptions/listen streams
        if (ctx.protocol_version or "") < "2026-07-28":  # a 2025-11-25 session (the stdio bridge's child)
            await ctx.session.send_tool_list_changed()
        return _text("The tool list changed")

    @server.tool(description="Changes test_dynamic_prompt and tells the listen streams.")
    async def test_trigger_prompt_change(ctx: Context) -> CallToolResult:
        server.remove_prompt("test_dynamic_prompt")
        description = f"Changed {next(versions)} times"
        server.add_prompt(Prompt.from_function(dynamic_prompt, name="test_dynamic_prompt", description=description))
        await ctx.notify_prompts_changed()
        if (ctx.protocol_version or "") < "2026-07-28":
            await ctx.session.send_prompt_list_changed()
        return _text("The prompt list changed")

    # -- http-custom-header-server-validation (SEP-2243) ------------------------------------

    @server.tool(description="Its region argument is mirrored in the Mcp-Param-Region header.")
    def test_custom_header(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
        return f"Region: {region}"
