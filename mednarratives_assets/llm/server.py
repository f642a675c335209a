"""An OpenAI-compatible chat server around the local GGUF model (standard library HTTP only).

    python -m mednarratives_assets.llm.server --port 8000 --host 127.0.0.1 [--gguf PATH] [--threads 1]

GET /health: 503 while the model loads, then 200 with the number of chat completions answered
(`chat_completions`), so a caller can tell whether a run made any call. GET /v1/models lists the
one model. POST /v1/chat/completions takes messages and max_tokens (or max_completion_tokens);
a `response_format` of type json_schema whose properties are all strings is filled one key at a
time (local_model.py), any other request gets plain text. Answers are greedy; streaming and n > 1
are refused.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from mednarratives_assets.llm.local_model import LocalChatModel
from mednarratives_assets.llm.smollm2 import smollm2_gguf

DEFAULT_MAX_TOKENS = 256
START_LIMIT_S = 180  # loading SmolLM2 takes about 15 s on 2 cores
_MAX_BODY_BYTES = 1 << 20


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.param = status, param

    def body(self) -> dict:
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": None}}


class ChatService:
    """The model behind the endpoints, loaded on a thread of its own, and the completions counted."""

    def __init__(self, model: LocalChatModel, model_id: str):
        self.model, self.model_id = model, model_id
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.completions = 0
        self._count_lock = threading.Lock()

    def load(self) -> None:
        try:
            self.model.load()
        except Exception as exc:  # reported on /health: the server stays up to say why
            self.load_error = f"{type(exc).__name__}: {exc}"
            _log(f"the model did not load: {self.load_error}")
            return
        _log(f"model {self.model.gguf_path} loaded in {self.model.load_seconds:.1f} s")
        self.ready.set()

    def health(self) -> tuple[int, dict]:
        if self.ready.is_set():
            return 200, {"status": "ok", "model": self.model_id, "chat_completions": self.completions}
        if self.load_error:
            return 500, {"status": "error", "error": self.load_error}
        return 503, {"status": "loading"}

    def complete(self, request: dict) -> dict:
        messages = _messages(request.get("messages"))
        if request.get("model") not in (None, self.model_id):
            raise RequestError(404, f"no model {request['model']!r}; this server has {self.model_id!r}")
        if request.get("stream") or request.get("n", 1) != 1:
            raise RequestError(400, "stream and n > 1 are not supported", "stream")
        max_tokens = request.get("max_completion_tokens") or request.get("max_tokens") or DEFAULT_MAX_TOKENS
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError(400, "max_tokens must be a positive integer", "max_tokens")
        if not self.ready.is_set():
            raise RequestError(503, "the model is still loading")
        started = time.perf_counter()
        answer = self.model.chat(messages, max_tokens, _string_keys(request.get("response_format")))
        with self._count_lock:
            self.completions += 1
        _log(f"{answer.completion_tokens} tokens in {time.perf_counter() - started:.2f} s")
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.content},
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            },
        }


def _messages(messages: object) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list", "messages")
    checked = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise RequestError(400, "each message needs a role and a text content", "messages")
        role = "system" if message.get("role") == "developer" else message.get("role")
        if role not in ("system", "user", "assistant"):
            raise RequestError(400, f"unsupported role {message.get('role')!r}", "messages")
        checked.append({"role": role, "content": message["content"]})
    return checked


def _string_keys(response_format: object) -> list[str] | None:
    """The keys of a json_schema response format whose properties are all strings, else None."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    properties = (response_format.get("json_schema") or {}).get("schema", {}).get("properties")
    if not isinstance(properties, dict) or not properties:
        return None
    if all(isinstance(p, dict) and p.get("type") == "string" for p in properties.values()):
        return list(properties)
    return None


def _log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, file=sys.stderr, flush=True)


def handler_for(service: ChatService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:
            _log(f"{self.address_string()} {format % args}")

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path == "/health":
                self._send(*service.health())
            elif path == "/v1/models":
                model = {"id": service.model_id, "object": "model", "created": 0, "owned_by": "local"}
                self._send(200, {"object": "list", "data": [model]})
            else:
                self._send(404, RequestError(404, f"no route GET {path}").body())

        def do_POST(self) -> None:
            try:
                if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
                    raise RequestError(404, f"no route POST {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= _MAX_BODY_BYTES:
                    raise RequestError(400, "the request body is missing or larger than 1 MiB")
                try:
                    request = json.loads(self.rfile.read(length))
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise RequestError(400, f"the request body is not JSON: {exc}") from None
                if not isinstance(request, dict):
                    raise RequestError(400, "the request body must be a JSON object")
                self._send(200, service.complete(request))
            except RequestError as exc:
                self._send(exc.status, exc.body())
            except Exception as exc:  # one failed request must not stop the server
                _log(f"internal error: {type(exc).__name__}: {exc}")
                self._send(500, RequestError(500, f"{type(exc).__name__}: {exc}").body())

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--gguf", type=Path, help="a GGUF model file (default: the pip-shipped SmolLM2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for generation")
    parser.add_argument("--model-id", help="the model's name in requests (default: the file's name)")
    args = parser.parse_args(argv)
    # A process of its own: nothing of it may reach the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    gguf = args.gguf or smollm2_gguf()
    service = ChatService(LocalChatModel(gguf, threads=args.threads), args.model_id or gguf.stem)
    httpd = ThreadingHTTPServer((args.host, args.port), handler_for(service))
    httpd.daemon_threads = True
    threading.Thread(target=service.load, name="load-model", daemon=True).start()
    _log(f"listening on http://{args.host}:{httpd.server_address[1]} (the model is loading)")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


def _answers_health(url: str) -> bool:
    try:
        with urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (URLError, OSError):  # refused while starting, 503 while the model loads
        return False


@contextmanager
def served(log_path: Path, start_limit_s: float = START_LIMIT_S) -> Iterator[str]:
    """This server around the pip-shipped SmolLM2, started as a user would on a free loopback port;
    yields its base URL (…/v1) once /health answers, and stops it as Ctrl-C would. RuntimeError
    naming the log when it exits or does not answer within `start_limit_s`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mednarratives_assets.llm.server",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + start_limit_s
            while not _answers_health(url):
                if server.poll() is not None:
                    raise RuntimeError(f"the server exited ({log_path}): {log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer within {start_limit_s:.0f} s ({log_path})")
                time.sleep(0.5)
            yield f"{url}/v1"
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
