"""A tiny A2A v1.0 agent built on the official Python SDK (`a2a-sdk[http-server]==1.3.0`).

The end-to-end interop test (`tests/tests/e2e/interop.rs`) starts it and has the Aegis host
dispatch a task to it with `A2A-Version: 1.0`. It is written the way the SDK's own samples write
an agent, and adds nothing of its own to the protocol:

- `DefaultRequestHandler` + `create_jsonrpc_routes` (JSON-RPC at `/`) + `create_agent_card_routes`;
- an `AgentExecutor` that publishes the task, marks it working, adds one artifact whose data part
  is the answer, and completes it (`TaskUpdater`);
- push notifications through the SDK's `BasePushNotificationSender` and its in-memory config store
  (the agent card says `push_notifications: true`).

`--role` picks what it does with its input (the first data part, else the text):

- `upper` (default): answers `{"topic": t.upper(), "echo": <the input>, "agent": "python-a2a-sdk"}`
  as a data part;
- `researcher`, `analyst`, `writer`: the research pipeline's three agents as an agent we did not
  write would be, answering only with text: one artifact holding one `text/markdown` text part,
  and a text status message. The researcher writes numbered notes on the topic, the analyst
  reads the notes back out of the research text and summarises them, and the writer turns the
  analysis into a markdown report of at most `word_limit` words. Each derives its text from its
  input, so the test can follow the text from one agent to the next.

Usage: `python3 a2a_agent.py [--port 0] [--delay-ms N] [--role upper|researcher|analyst|writer]`.
Once the socket is bound it prints exactly one line to stdout: `a2a-sdk agent listening on
http://127.0.0.1:PORT`. Logs go to stderr.
"""

import argparse
import asyncio
import json
import logging
import socket
import sys

import httpx
import uvicorn
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette

from a2a.helpers import (
    new_data_part,
    new_task_from_user_message,
    new_text_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import (
    BasePushNotificationSender,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    TaskUpdater,
)
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill

log = logging.getLogger("a2a_agent")


def read_input(context: RequestContext):
    """The first data part of the message as plain JSON, else its text (parsed if JSON)."""
    message = context.message
    if message is not None:
        for part in message.parts:
            if part.HasField("data"):
                return MessageToDict(part)["data"]
    text = context.get_user_input()
    try:
        return json.loads(text)
    except ValueError:
        return {"topic": text}


def research_notes(data) -> str:
    """The researcher: `sources` numbered notes of `depth` sentences on the topic."""
    topic = str(data.get("topic", "")).strip()
    parameters = data.get("parameters") or {}
    sources = int(parameters.get("sources", 3))
    depth = int(parameters.get("depth", 1))
    lines = [f"# Research notes: {topic}", ""]
    for n in range(1, sources + 1):
        sentences = " ".join(
            f"Finding {n}.{d} on {topic} comes from source {n}." for d in range(1, depth + 1)
        )
        lines.append(f"{n}. {sentences}")
    return "\n".join(lines)


def analyse(data) -> str:
    """The analyst: the numbered notes of the research text, counted and listed as findings."""
    topic = str(data.get("topic", "")).strip()
    research = data.get("research")
    if not isinstance(research, str) or not research.strip():
        raise ValueError(f"expected the research as text, got {type(research).__name__}")
    notes = [
        line.split(". ", 1)[1]
        for line in research.splitlines()
        if line[:1].isdigit() and ". " in line
    ]
    words = len(research.split())
    lines = [
        f"## Analysis of {topic}",
        "",
        f"The research holds {len(notes)} notes in {words} words. Key findings:",
        "",
    ]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines)


def write_report(data) -> str:
    """The writer: a markdown report built from the analysis, cut to `word_limit` words."""
    topic = str(data.get("topic", "")).strip()
    analysis = data.get("analysis")
    if not isinstance(analysis, str) or not analysis.strip():
        raise ValueError(f"expected the analysis as text, got {type(analysis).__name__}")
    limit = int(data.get("word_limit", 500))
    body = [line for line in analysis.splitlines() if not line.startswith("## ")]
    lines = [f"# {topic}", "", "Written by the a2a-sdk writer.", ""]
    lines += "\n".join(body).strip().splitlines()
    kept, left = [], limit
    for line in lines:
        words = line.split()
        if len(words) > left:
            kept.append(" ".join(words[:left]))
            break
        kept.append(line)
        left -= len(words)
    return "\n".join(kept).strip()


TEXT_ROLES = {"researcher": research_notes, "analyst": analyse, "writer": write_report}


class UpperCaseExecutor(AgentExecutor):
    """Answers per `role` (see the module's doc), after an optional delay."""

    def __init__(self, delay_ms: int, role: str) -> None:
        self.delay_ms = delay_ms
        self.role = role

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        data = read_input(context)
        if self.role in TEXT_ROLES:
            await self.answer_in_text(updater, task, data)
            return
        topic = data.get("topic", "") if isinstance(data, dict) else str(data)
        answer = {"topic": str(topic).upper(), "echo": data, "agent": "python-a2a-sdk"}
        log.info("task %s: answering %s", task.id, json.dumps(answer)[:200])
        await updater.add_artifact(
            [new_data_part(answer, media_type="application/json")], name="result"
        )
        await updater.complete(
            new_text_message(f"upper-cased {topic!r}", context_id=task.context_id, task_id=task.id)
        )

    async def answer_in_text(self, updater: TaskUpdater, task, data) -> None:
        """The pipeline roles: a text/markdown artifact and a text status message, nothing else."""
        try:
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            text = TEXT_ROLES[self.role](data)
        except (ValueError, TypeError) as error:
            log.info("task %s: %s failed: %s", task.id, self.role, error)
            await updater.failed(
                new_text_message(str(error), context_id=task.context_id, task_id=task.id)
            )
            return
        log.info("task %s: %s answering %d characters of text", task.id, self.role, len(text))
        await updater.add_artifact(
            [new_text_part(text, media_type="text/markdown")], name=self.role
        )
        await updater.complete(
            new_text_message(f"{self.role} done", context_id=task.context_id, task_id=task.id)
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is not None:
            await TaskUpdater(event_queue, task.id, task.context_id).cancel()


def build_app(base_url: str, delay_ms: int, role: str) -> Starlette:
    card = AgentCard(
        name="upper-case agent" if role == "upper" else f"text-only {role}",
        description=(
            "Upper-cases the topic of its input and echoes the input (Aegis interop test)"
            if role == "upper"
            else f"The research pipeline's {role}, answering only with text (Aegis interop test)"
        ),
        version="1.0.0",
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json"] if role == "upper" else ["text/markdown"],
        capabilities=AgentCapabilities(streaming=False, push_notifications=True),
        skills=[
            AgentSkill(
                id="upper",
                name="Upper-case",
                description="Upper-cases the topic",
                tags=["test"],
            )
        ],
        supported_interfaces=[
            AgentInterface(protocol_binding="JSONRPC", url=base_url + "/", protocol_version="1.0")
        ],
    )
    push_store = InMemoryPushNotificationConfigStore()
    handler = DefaultRequestHandler(
        agent_executor=UpperCaseExecutor(delay_ms, role),
        task_store=InMemoryTaskStore(),
        agent_card=card,
        push_config_store=push_store,
        push_sender=BasePushNotificationSender(httpx.AsyncClient(timeout=10), push_store),
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url="/")
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--role", choices=["upper", *TEXT_ROLES], default="upper")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)

    # Bind first so that port 0 can be reported before uvicorn serves on the same socket.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"

    app = build_app(base_url, args.delay_ms, args.role)
    config = uvicorn.Config(app, log_config=None, log_level="info")
    server = uvicorn.Server(config)
    print(f"a2a-sdk agent listening on {base_url}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
