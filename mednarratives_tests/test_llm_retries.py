"""curated_text's openai backend against a scripted OpenAI-compatible server on 127.0.0.1: rate limits
and server errors retried by the `openai` client, then the rules texts with the reason, and the
requests in flight at once. No model: each request gets the next reply of the test's script. The
client's backoff (about 0.5 s, then 1 s) makes a retried case take a second or two."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.stages.curated_text import AnswerCache, CurationSettings, curate_channel
from mednarratives_tests.test_curated_text import pairs_of

TERMS = MedicalVocabulary().terms
EFFUSION = "so here on this ct scan of the chest we can see a large pleural effusion on the right side"
GOOD = json.dumps(
    {
        "caption": "A CT scan of the chest with a large right pleural effusion.",
        "medical_text": "Large right pleural effusion on chest CT.",
        "roi_text": "",
    }
)


@dataclass(frozen=True)
class Reply:
    """One scripted reply: a 200 with the chat message `content` (no choices at all when
    `answered` is False), or an error status with `message`."""

    status: int = 200
    content: str = GOOD
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    answered: bool = True

    def body(self) -> dict:
        if self.status != 200:
            return {"error": {"message": self.message, "type": "server_error"}}
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": 0,
            "model": "scripted",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.content},
                    "finish_reason": "stop",
                }
            ]
            if self.answered
            else [],
        }


OK = Reply()
# The client honours a Retry-After above 0 only: this one gets its own backoff.
RATE_LIMITED = Reply(429, message="rate limited", headers=(("Retry-After", "0"),))
UNAVAILABLE = Reply(503, message="overloaded")


class ScriptedChatServer(ThreadingHTTPServer):
    """Answers each POST /v1/chat/completions with the next reply of `script` (the last again once
    it runs out) and records every request. `meet`: each request waits until so many are in flight
    (a barrier, so that a concurrency shows whatever the timing); `hold_s`: then it is held so long."""

    daemon_threads = True

    def __init__(self, script: list[Reply], meet: int = 1, hold_s: float = 0.0):
        super().__init__(("127.0.0.1", 0), _ChatHandler)  # port 0: the system picks a free one
        self.url = f"http://127.0.0.1:{self.server_port}/v1"
        self.script, self.hold_s = script, hold_s
        self.meeting = threading.Barrier(meet, timeout=5)
        self.requests: list[dict] = []  # each request's headers (lower-case names) and JSON body, in order
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def reply_to(self, headers: dict, body: dict) -> Reply:
        with self.lock:
            self.requests.append({"headers": headers, "body": body})
            reply = self.script[min(len(self.requests), len(self.script)) - 1]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.meeting.wait()
        except threading.BrokenBarrierError:
            pass  # fewer came at once than `meet`: max_in_flight shows it
        time.sleep(self.hold_s)
        with self.lock:
            self.in_flight -= 1  # before the reply is sent: the client's next request may follow it at once
        return reply


class _ChatHandler(BaseHTTPRequestHandler):
    server: ScriptedChatServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = (
            self.server.reply_to({k.lower(): v for k, v in self.headers.items()}, body)
            if self.path == "/v1/chat/completions"
            else Reply(404, message=f"no route {self.path}")
        )
        payload = json.dumps(reply.body()).encode()
        self.send_response(reply.status)
        for name, value in (("Content-Type", "application/json"), *reply.headers):
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:
        pass  # the test's assertions report what the server saw


@contextmanager
def scripted_server(script: list[Reply], meet: int = 1, hold_s: float = 0.0) -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(script, meet, hold_s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def settings(server: ScriptedChatServer, **changes) -> CurationSettings:
    return CurationSettings(backend="openai", base_url=server.url, model="scripted", **changes).validated()


def retry_counts(server: ScriptedChatServer) -> list[str]:
    """The client's count of retries before each request (its x-stainless-retry-count header)."""
    return [request["headers"].get("x-stainless-retry-count") for request in server.requests]


def test_a_rate_limit_is_retried_until_the_answer_comes():
    with scripted_server([RATE_LIMITED, RATE_LIMITED, OK]) as server:
        result = curate_channel(pairs_of([EFFUSION]), settings(server), TERMS, AnswerCache(None))
    [row] = result.table.to_dicts()
    assert row["text_source"] == "openai" and row["rejected_reason"] is None
    assert row["caption"] == json.loads(GOOD)["caption"]
    assert len(server.requests) == 3 and retry_counts(server) == ["0", "1", "2"]
    assert server.requests[0]["body"]["model"] == "scripted"
    assert result.counts.model_calls == 1 and result.counts.accepted == 1


def test_a_server_error_on_every_retry_falls_back_to_the_rules_texts_and_is_asked_again(tmp_path):
    pairs, cache = pairs_of([EFFUSION]), AnswerCache(tmp_path / "curated_text")
    with scripted_server([UNAVAILABLE]) as server:
        result = curate_channel(pairs, settings(server, max_retries=2), TERMS, cache)
        [row] = result.table.to_dicts()
        assert row["rejected_reason"] == "call failed: InternalServerError: Error code: 503 - overloaded"
        assert row["text_source"] == "rules" and row["caption"] == pairs["corrected_caption"][0]
        assert len(server.requests) == 3 and retry_counts(server) == ["0", "1", "2"]
        assert result.counts.metadata()["rejected_by_reason"] == {"call failed": 1}
        # max_retries is not part of the cache key: a cached failure would make no request here.
        again = curate_channel(pairs, settings(server, max_retries=0), TERMS, cache)
    assert len(server.requests) == 4 and retry_counts(server)[3] == "0"
    assert again.counts.cache_hits == 0 and again.counts.model_calls == 1
    assert not list((tmp_path / "curated_text").rglob("*.json"))


def test_a_server_error_once_is_retried_and_the_answer_accepted():
    with scripted_server([Reply(500, message="boom"), OK]) as server:
        result = curate_channel(pairs_of([EFFUSION]), settings(server), TERMS, AnswerCache(None))
    [row] = result.table.to_dicts()
    assert row["text_source"] == "openai" and row["rejected_reason"] is None
    assert len(server.requests) == 2 and result.counts.accepted == 1


def test_concurrency_is_the_most_requests_in_flight_at_once():
    pairs = pairs_of([EFFUSION] * 6)
    # Each request waits until 3 are in flight: fewer would wait 5 s and show as 2, more as 4 or above.
    with scripted_server([OK], meet=3) as server:
        result = curate_channel(
            pairs, settings(server, concurrency=3, max_retries=0), TERMS, AnswerCache(None)
        )
    assert len(server.requests) == 6 and server.max_in_flight == 3
    assert result.counts.accepted == 6
    with scripted_server([OK], hold_s=0.1) as server:
        result = curate_channel(
            pairs, settings(server, concurrency=1, max_retries=0), TERMS, AnswerCache(None)
        )
    assert len(server.requests) == 6 and server.max_in_flight == 1
    assert result.counts.accepted == 6


def test_a_reply_without_choices_is_an_empty_answer_and_the_next_pair_still_asked():
    with scripted_server([Reply(answered=False), OK]) as server:
        result = curate_channel(
            pairs_of([EFFUSION, EFFUSION + " again"]),
            settings(server, concurrency=1),
            TERMS,
            AnswerCache(None),
        )
    empty, answered = result.table.to_dicts()
    assert empty["text_source"] == "rules" and empty["rejected_reason"].startswith("invalid JSON")
    assert answered["text_source"] == "openai"
