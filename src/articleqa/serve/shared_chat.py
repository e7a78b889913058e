"""One chat for all workers: the chat runs in one process, and every worker passes chat requests to it.

Gradio's queue keeps each chat event in the process that accepted it: the browser's follow-up request
(``/gradio_api/queue/data``, ``/gradio_api/call/<name>/<event>``) that lands on another worker finds no
such event, and the question is lost. So under ``uvicorn app.main:app --workers N`` the chat is served by
one process — the worker that takes the lock ``<index_dir>/.shared/chat.lock`` starts it on a private
loopback port (written to ``chat.json`` beside the lock) — and every worker, that one included, forwards
what is not the HTTP API (``/api``, ``/docs``, ``/view``) to it, streaming both ways (server-sent events
included). The queue, the session state and uploaded files all live in that one process, so the page and
Gradio's client API work whichever worker a request reaches. If that worker stops, the lock is released and
the next chat request in another worker starts the chat there (a page open at the time reconnects).

The API itself is answered by whichever worker receives it; only the chat goes through the owner.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from articleqa.serve.shared import SHARED_DIR

log = logging.getLogger(__name__)

#: request headers not passed on (hop-by-hop, RFC 9110 7.6.1) and those the proxy sets itself
_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"content-length",
}


class ChatOwner:
    """Finds (or becomes) the process that serves the chat for one index folder."""

    def __init__(self, index_dir: str | Path, make_chat_app: Callable[[], object]):
        self.dir = Path(index_dir) / SHARED_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.make_chat_app = make_chat_app
        self._lock_file = None
        self._mutex = threading.Lock()
        self.address: str | None = None

    def _read(self) -> dict | None:
        try:
            return json.loads((self.dir / "chat.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _try_to_own(self) -> bool:
        lock = open(self.dir / "chat.lock", "a+")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return False
        self._lock_file = lock  # held for the life of the process
        return True

    def _serve_here(self) -> str:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.make_chat_app(), log_level="warning", lifespan="on", timeout_keep_alive=30)
        server = uvicorn.Server(config)
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="chat-server", daemon=True).start()
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        address = f"http://127.0.0.1:{port}"
        tmp = self.dir / f".chat-{os.getpid()}.json"
        tmp.write_text(
            json.dumps({"address": address, "pid": os.getpid(), "host": socket.gethostname()}), encoding="utf-8"
        )
        os.replace(tmp, self.dir / "chat.json")
        log.info("the chat for every worker is served by this process (pid %d) at %s", os.getpid(), address)
        return address

    def get(self, renew: bool = False) -> str:
        """The chat server's address; ``renew`` after it could not be reached (its process may be gone)."""
        with self._mutex:
            if self.address and not renew:
                return self.address
            if self._lock_file is not None:  # this process owns the chat: its server is the one
                return self.address or self._serve_here()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if self._try_to_own():
                    self.address = self._serve_here()
                    return self.address
                info = self._read()
                if info and info.get("address") and (not renew or info["address"] != self.address):
                    self.address = info["address"]
                    return self.address
                time.sleep(0.2)  # the owner is starting its server
            raise RuntimeError("no worker serves the chat (timed out waiting for chat.json)")


class ChatProxy:
    """ASGI middleware: requests for the API (``is_api``) go to the app, the rest to the chat's owner."""

    def __init__(self, app, owner: ChatOwner, is_api: Callable[[str], bool]):
        self.app = app
        self.owner = owner
        self.is_api = is_api
        self._clients: dict[int, object] = {}

    def _client(self):
        import asyncio

        import httpx

        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            self._clients[loop] = httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, read=None),
                follow_redirects=False,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        return self._clients[loop]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.is_api(scope["path"]):
            return await self.app(scope, receive, send)
        import anyio
        import httpx

        body = bytearray()
        while True:  # bodies here are bounded by RequestGuard (outside this middleware)
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        client_host = (scope.get("client") or ("unknown", 0))[0]
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP and k.lower() != b"x-forwarded-for"]
        headers.append((b"x-forwarded-for", client_host.encode("latin-1")))
        target = scope.get("raw_path") or scope["path"].encode("utf-8")
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        response = None
        for attempt in range(2):
            address = await anyio.to_thread.run_sync(self.owner.get, attempt > 0)
            request = self._client().build_request(
                scope["method"], address + target.decode("latin-1"), headers=headers, content=bytes(body)
            )
            try:
                response = await self._client().send(request, stream=True)
                break
            except httpx.ConnectError:
                log.warning("the chat server at %s cannot be reached; finding its new owner", address)
        if response is None:
            await send(
                {"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": b'{"error": "the chat is restarting; try again"}'})
            return
        try:
            out = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()
