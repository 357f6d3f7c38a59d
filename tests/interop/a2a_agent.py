"""A tiny A2A v1.0 agent built on the official Python SDK (`a2a-sdk[http-server]==1.3.0`).

The end-to-end interop test (`tests/tests/e2e/interop.rs`) starts it and has the Aegis host
dispatch a task to it with `A2A-Version: 1.0`. It is written the way the SDK's own samples write
an agent, and adds nothing of its own to the protocol:

- `DefaultRequestHandler` + `create_jsonrpc_routes` (JSON-RPC at `/`) + `create_agent_card_routes`;
- an `AgentExecutor` that publishes the task, marks it working, adds one artifact whose data part
  is the answer, and completes it (`TaskUpdater`);
- push notifications through the SDK's `BasePushNotificationSender` and its in-memory config store
  (the agent card says `push_notifications: true`).

The answer to an input `{"topic": t, ...}` (the first data part, else the text) is
`{"topic": t.upper(), "echo": <the input>, "agent": "python-a2a-sdk"}`.

Usage: `python3 a2a_agent.py [--port 0] [--delay-ms N]`. Once the socket is bound it prints exactly
one line to stdout: `a2a-sdk agent listening on http://127.0.0.1:PORT`. Logs go to stderr.
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

from a2a.helpers import new_data_part, new_task_from_user_message, new_text_message
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


class UpperCaseExecutor(AgentExecutor):
    """Upper-cases the topic and echoes the input, after an optional delay."""

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms

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
        topic = data.get("topic", "") if isinstance(data, dict) else str(data)
        answer = {"topic": str(topic).upper(), "echo": data, "agent": "python-a2a-sdk"}
        log.info("task %s: answering %s", task.id, json.dumps(answer)[:200])
        await updater.add_artifact(
            [new_data_part(answer, media_type="application/json")], name="result"
        )
        await updater.complete(
            new_text_message(f"upper-cased {topic!r}", context_id=task.context_id, task_id=task.id)
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is not None:
            await TaskUpdater(event_queue, task.id, task.context_id).cancel()


def build_app(base_url: str, delay_ms: int) -> Starlette:
    card = AgentCard(
        name="upper-case agent",
        description="Upper-cases the topic of its input and echoes the input (Aegis interop test)",
        version="1.0.0",
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json"],
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
        agent_executor=UpperCaseExecutor(delay_ms),
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
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)

    # Bind first so that port 0 can be reported before uvicorn serves on the same socket.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"

    app = build_app(base_url, args.delay_ms)
    config = uvicorn.Config(app, log_config=None, log_level="info")
    server = uvicorn.Server(config)
    print(f"a2a-sdk agent listening on {base_url}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
