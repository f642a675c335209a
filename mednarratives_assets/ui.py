"""`mednarratives ui`: the Dagster UI and daemon, with a guard that refuses cross-site requests.

The Dagster webserver has no authentication and no CSRF or Host checks of its own: any web page
the user visits could make the browser add partitions or launch runs through it. `CrossSiteGuard`
refuses what a foreign page (or a DNS-rebinding name) could send; docs/ui-security.md explains it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import uvicorn
from dagster import DagsterInstance
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster_shared.ipc import get_ipc_shutdown_pipe, open_ipc_subprocess, send_ipc_shutdown_message
from dagster_webserver.app import create_app_from_workspace_process_context
from dagster_webserver.version import __version__ as webserver_version
from starlette.datastructures import Headers, QueryParams
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from mednarratives_assets.settings import INSTANCE_CONFIG, REPO_ROOT, DataLayout

DOCS = "docs/ui-security.md"
SAFE_METHODS = frozenset({"GET", "HEAD"})
DAEMON_STOP_TIMEOUT_S = 60


def loopback_hosts(port: int) -> list[str]:
    """The Host headers a browser on this machine sends to a UI bound to loopback."""
    return [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"]


class CrossSiteGuard:
    """ASGI middleware: a request passes only if it names an allowed Host, comes from no foreign
    origin, and is not something a page can send without a CORS preflight (a GraphQL GET, or a
    POST whose body is not JSON)."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(host.lower() for host in hosts)
        # A proxy may serve the UI over https under an allowed name.
        self.origins = frozenset(f"{scheme}://{host}" for host in self.hosts for scheme in ("http", "https"))

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None."""
        headers = Headers(scope=scope)
        host = headers.getlist("host")
        if len(host) != 1 or host[0].lower() not in self.hosts:
            # A DNS-rebinding page reaches 127.0.0.1 under its own name, which shows here.
            return f"Host {', '.join(host) or '(none)'} is not served here (see --allow-host)"
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.origins:
            return f"requests from {origin} are refused"
        navigation = headers.get("sec-fetch-mode") == "navigate" and scope.get("method") in SAFE_METHODS
        if origin is None and headers.get("sec-fetch-site") in ("cross-site", "same-site") and not navigation:
            return "cross-site requests are refused"
        if scope["type"] == "websocket":
            return None
        if scope["method"] in SAFE_METHODS:
            # The UI never queries over GET; an <img> or link could send a mutation that way.
            if scope["path"].rstrip("/") == "/graphql" and "query" in QueryParams(scope["query_string"]):
                return "GraphQL over GET is refused: POST application/json"
            return None
        # Forms and no-cors fetches can send text/plain (even "text/plain; application/json",
        # which Dagster reads as JSON) but never application/json itself.
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return "only application/json bodies are accepted"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = self.refusal(scope) if scope["type"] in ("http", "websocket") else None
        if reason is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await WebSocketClose(code=1008, reason=reason)(scope, receive, send)  # a 403 before accept
        else:
            # The reason may quote the request's headers: never let a browser read it as HTML.
            response = PlainTextResponse(f"{reason} ({DOCS})\n", 403, {"X-Content-Type-Options": "nosniff"})
            await response(scope, receive, send)


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse to listen beyond this machine unless told that a proxy authenticates users."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        loopback = False
    if not loopback and not allow_remote:
        raise SystemExit(
            f"--host {host}: the UI has no authentication, so it listens on loopback only. Behind an"
            f" authenticating proxy, pass --allow-remote and --allow-host NAME; see {DOCS}."
        )


def dagster_home(layout: DataLayout) -> Path:
    """DAGSTER_HOME, by default `<data root>/dagster_home`, holding the instance's dagster.yaml: where
    it has none (or a link that leads nowhere), a link to the repository's dagster.yaml. Without it
    Dagster would run with its own defaults: telemetry on, and every channel's run at once."""
    home = Path(os.environ.get("DAGSTER_HOME") or layout.data_root / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if config.is_symlink() and not config.exists():
        config.unlink()
    if not config.exists() and not (home / "dagster.yml").exists():
        with contextlib.suppress(FileExistsError):  # CLI processes started at once all get here
            config.symlink_to(INSTANCE_CONFIG)
    return home


@contextlib.contextmanager
def running_daemon(workspace: Path) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run`, stopped through its shutdown pipe as `dagster dev` stops it."""
    shutdown_read, shutdown_write = get_ipc_shutdown_pipe()
    daemon = open_ipc_subprocess(
        [sys.executable, "-m", "dagster._daemon", "run", "--workspace", str(workspace)]
        + ["--shutdown-pipe", str(shutdown_read)],
        pass_fds=[shutdown_read],
    )
    os.close(shutdown_read)
    try:
        yield daemon
    finally:
        with contextlib.suppress(BrokenPipeError):  # the daemon may be gone already
            send_ipc_shutdown_message(shutdown_write)
        try:
            daemon.wait(timeout=DAEMON_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            daemon.kill()


def serve_ui(
    layout: DataLayout,
    host: str = "127.0.0.1",
    port: int = 3000,
    workspace: Path = REPO_ROOT / "workspace.yaml",
    allow_hosts: Iterable[str] = (),
    allow_remote: bool = False,
) -> int:
    """Run dagster-daemon beside the guarded webserver, as `dagster dev` does, until interrupted."""
    check_bind(host, allow_remote)
    os.environ["DAGSTER_HOME"] = str(dagster_home(layout))
    hosts = [*loopback_hosts(port), *allow_hosts]  # after --allow-remote, clients' names too
    # uvicorn handles SIGTERM, then raises it again: as KeyboardInterrupt the daemon still stops.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    target = WorkspaceFileTarget([str(workspace)])
    with (
        DagsterInstance.get() as instance,  # creates the storage before the daemon opens it too
        running_daemon(workspace) as daemon,
        WorkspaceProcessContext(instance, version=webserver_version, workspace_load_target=target) as ctx,
    ):
        app = CrossSiteGuard(create_app_from_workspace_process_context(ctx), hosts)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        threading.Thread(target=_stop_when_exits, args=(daemon, server), daemon=True).start()
        print(f"Serving the Dagster UI on http://{host}:{port}; it answers to {', '.join(hosts)}", flush=True)
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn raises the Ctrl-C (or SIGTERM) it handled again
            return 0
        return 1  # the daemon stopped


def _stop_when_exits(daemon: subprocess.Popen, server: uvicorn.Server) -> None:
    """Without the daemon no sensor, backfill or queued run moves, so the UI stops too."""
    daemon.wait()
    if not server.should_exit:
        print(f"dagster-daemon exited with code {daemon.returncode}; stopping the UI", file=sys.stderr)
        server.should_exit = True
