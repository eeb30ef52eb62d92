"""A stdio MCP server for the stdio-bridge tests, written with the SDK's `MCPServer`.

Tools: `echo`; `progress` (sends progress notifications); `ask` (elicitation: asks the
client a question and returns the answer); `sample` (sampling: asks the client's model);
`pid` (this process's id, and the caller identity the bridge put in its environment);
`crash` (exits the process mid-call); `slow` (sleeps, reporting progress, so a test can
cancel it; writes a marker file when it is cancelled); `notify_later` (sends
`notifications/tools/list_changed` after the call has returned: a message outside any request);
`stderr_flood` (writes `megabytes` MB to stderr, one 1 MiB line first, then short lines, and
answers once all of it was written: a bridge that stopped reading stderr would block it).

Run as `python demo_server.py` (stdio).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import SamplingMessage, TextContent
from pydantic import BaseModel

server = MCPServer("stdio-demo", instructions="A stdio test server behind authgate's bridge.")


class Answer(BaseModel):
    answer: str


@server.tool(description="Echo the text back.")
def echo(text: str) -> str:
    return text


@server.tool(description="Send `steps` progress notifications, then return 'done'.")
async def progress(steps: int, ctx: Context) -> str:
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i}")
    return f"done after {steps} steps"


@server.tool(description="Ask the client a question (elicitation) and return the answer.")
async def ask(question: str, ctx: Context) -> str:
    result = await ctx.elicit(question, Answer)
    if result.action == "accept" and result.data is not None:
        return f"answer: {result.data.answer}"
    return f"no answer ({result.action})"


@server.tool(description="Ask the client's model (sampling) and return its text.")
async def sample(prompt: str, ctx: Context) -> str:
    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=50
    )
    content = result.content
    return f"model said: {content.text if isinstance(content, TextContent) else content}"


@server.tool(description="This process's id and the caller the bridge named in the environment.")
def pid() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "subject": os.environ.get("AUTHGATE_CALLER_SUBJECT"),
        "client_id": os.environ.get("AUTHGATE_CALLER_CLIENT_ID"),
    }


@server.tool(description="Exit the process without answering.")
def crash() -> str:
    sys.stderr.write("demo server: crashing on purpose\n")
    sys.stderr.flush()
    os._exit(3)


@server.tool(description="Report progress, then sleep `seconds`; record a cancellation in `marker`.")
async def slow(seconds: float, marker: str, ctx: Context) -> str:
    await ctx.report_progress(0, 1, "started")
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        Path(marker).write_text("cancelled")
        raise
    return "slept"


@server.tool(description="Write `megabytes` MB to stderr (a 1 MiB line, then short ones); return the byte count.")
def stderr_flood(megabytes: int) -> str:
    out = sys.stderr.buffer
    total = megabytes * 1024 * 1024
    out.write(b"x" * (1024 * 1024) + b"\n")
    line = b"demo server: a line of stderr noise ".ljust(99, b".") + b"\n"
    block = line * 10_000  # about 1 MB per write
    written = 1024 * 1024 + 1
    while written < total:
        out.write(block)
        written += len(block)
    out.flush()
    return f"wrote {written} bytes"


_background: set[asyncio.Task[Any]] = set()


@server.tool(description="After `delay` seconds, send notifications/tools/list_changed (outside any request).")
async def notify_later(delay: float, ctx: Context) -> str:
    session = ctx.session

    async def later() -> None:
        await asyncio.sleep(delay)
        await session.send_tool_list_changed()

    task = asyncio.get_running_loop().create_task(later())
    _background.add(task)
    task.add_done_callback(_background.discard)
    return "scheduled"


if __name__ == "__main__":
    sys.stderr.write(f"demo server: started pid {os.getpid()}\n")
    sys.stderr.flush()
    server.run("stdio")
