"""`mednarratives ui` refuses what a foreign web page could make the user's browser send: GraphQL
over GET, non-JSON POSTs, foreign Origins and Hosts. First the guard alone, then the real UI."""

from __future__ import annotations

import json
import os
import re
import sys

import dagster as dg
import pytest
import requests
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from mednarratives_assets.settings import INSTANCE_CONFIG
from mednarratives_assets.ui import CrossSiteGuard, check_bind, loopback_hosts
from mednarratives_tests.servers import running_server, wait_until

UI = "http://127.0.0.1:3000"
JSON = {"Content-Type": "application/json"}
PROXY = "dagster.example.org"
REPOSITORIES = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
REPOSITORY = '{repositoryName: "__repository__", repositoryLocationName: "mednarratives_assets.definitions"}'


def add_partition(key: str) -> str:
    return (
        f"mutation {{ addDynamicPartition(repositorySelector: {REPOSITORY},"
        f' partitionsDefName: "channel", partitionKey: "{key}") {{ __typename }} }}'
    )


LAUNCH_RUN = (
    "mutation { launchRun(executionParams: {selector: {repositoryLocationName:"
    ' "mednarratives_assets.definitions", repositoryName: "__repository__",'
    ' jobName: "frame_classifier_job"}}) { __typename } }'
)
LAUNCH_BACKFILL = (
    'mutation { launchPartitionBackfill(backfillParams: {partitionNames: [".."],'
    ' assetSelection: [{path: ["video_downloads"]}]}) { __typename } }'
)


async def echo(request):
    return PlainTextResponse("ok")


async def echo_socket(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text("ok")
    await websocket.close()


@pytest.fixture
def client() -> TestClient:
    app = Starlette(
        routes=[Route("/{path:path}", echo, methods=["GET", "POST"]), WebSocketRoute("/graphql", echo_socket)]
    )
    return TestClient(CrossSiteGuard(app, [*loopback_hosts(3000), PROXY]), base_url=UI)


@pytest.mark.parametrize(
    "base_url", [UI, "http://localhost:3000", "http://[::1]:3000", "http://LOCALHOST:3000"]
)
def test_loopback_names_pass(client, base_url):
    client.base_url = base_url
    response = client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": base_url.lower()})
    assert response.status_code == 200, response.text


def test_a_missing_or_doubled_host_is_refused(client):
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b""}
    assert "(none)" in client.app.refusal({**scope, "headers": []})
    doubled = [(b"host", b"127.0.0.1:3000"), (b"host", b"evil.example")]
    assert client.app.refusal({**scope, "headers": doubled})


@pytest.mark.parametrize(
    "host", ["evil.example:3000", "127.0.0.1:3001", "127.0.0.1", "localhost.evil.example:3000"]
)
def test_other_hosts_are_refused(client, host):
    response = client.get("/", headers={"Host": host})
    assert response.status_code == 403 and "Host" in response.text


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://localhost:8080", "http://127.0.0.1:3000.evil"]
)
def test_foreign_origins_are_refused(client, origin):
    response = client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": origin})
    assert response.status_code == 403


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/plain; application/json", "application/x-www-form-urlencoded", None]
)
def test_a_post_must_be_json(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/graphql", content=b'{"query": "{ __typename }"}', headers=headers)
    assert response.status_code == 403 and "application/json" in response.text


def test_graphql_over_get_is_refused_but_pages_load(client):
    assert client.get("/graphql", params={"query": add_partition("..")}).status_code == 403
    assert client.get("/graphql/", params={"query": "{ __typename }"}).status_code == 403
    assert client.get("/graphql", headers={"Accept": "text/html"}).status_code == 200  # GraphiQL
    assert client.get("/runs", params={"query": "x"}).status_code == 200


def test_cross_site_fetches_without_origin_are_refused_but_links_work(client):
    img = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    assert client.get("/favicon.png", headers=img).status_code == 403
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert client.get("/runs", headers=link).status_code == 200


def test_a_proxy_name_passes_when_allowed(client):
    client.base_url = f"https://{PROXY}"
    headers = {"Origin": f"https://{PROXY}", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/graphql", json={"query": "{ __typename }"}, headers=headers).status_code == 200


def test_websockets_check_origin(client):
    with client.websocket_connect("ws://127.0.0.1:3000/graphql", headers={"Origin": UI}) as socket:
        assert socket.receive_text() == "ok"
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect(
            "ws://127.0.0.1:3000/graphql", headers={"Origin": "http://evil.example"}
        ):
            pass
    assert refused.value.code == 1008


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_listening_beyond_loopback_needs_allow_remote(host):
    with pytest.raises(SystemExit, match="ui-security.md"):
        check_bind(host, allow_remote=False)
    check_bind(host, allow_remote=True)
    check_bind("::1", allow_remote=False)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`mednarratives ui` on a free port, with a scratch data root and the default DAGSTER_HOME."""
    root = tmp_path_factory.mktemp("ui") / "data"
    (root / "videos").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | {
        "MEDNARRATIVES_DATA_ROOT": str(root)
    }
    command = [sys.executable, "-m", "mednarratives_assets.cli", "ui", "--port", "{port}"]

    def up(url: str):
        try:  # the code location is loaded
            return post(url, REPOSITORIES).json()["data"]["repositoriesOrError"].get("nodes")
        except requests.ConnectionError:
            return False

    with running_server(command, env, root.parent / "ui.log", up, poll_s=0.5) as url:
        yield url, root / "dagster_home"


def instance_state(home) -> tuple[list[str], int, int]:
    """The channel partitions, runs and backfills in the UI's instance."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return (
            instance.get_dynamic_partitions("channel"),
            instance.get_runs_count(),
            len(instance.get_backfills()),
        )


def post(url: str, query: str, headers: dict | None = None) -> requests.Response:
    body = json.dumps({"query": query})
    return requests.post(f"{url}/graphql", data=body, headers={**JSON, **(headers or {})}, timeout=30)


@pytest.mark.integration
def test_the_ui_refuses_cross_site_mutations(ui):
    url, home = ui
    evil = {"Origin": "http://evil.example"}
    in_url = {"query": add_partition("..")}
    # Without the guard each of these adds the partition or launches the run or backfill.
    attacks = {
        "GET mutation": requests.get(f"{url}/graphql", params=in_url, timeout=10),
        "text/plain POST, mutation in the URL": requests.post(
            f"{url}/graphql", params=in_url, data="x", headers={"Content-Type": "text/plain"}, timeout=10
        ),
        "text/plain; application/json POST": post(
            url, add_partition(".."), {"Content-Type": "text/plain; application/json"}
        ),
        "foreign Origin": post(url, add_partition(".."), evil),
        "foreign Host": post(url, add_partition(".."), {"Host": f"evil.example:{url.rsplit(':', 1)[1]}"}),
        "launchRun": post(url, LAUNCH_RUN, {"Content-Type": "text/plain; application/json", **evil}),
        "launchPartitionBackfill": requests.get(
            f"{url}/graphql", params={"query": LAUNCH_BACKFILL}, timeout=10
        ),
        "CORS preflight": requests.options(
            f"{url}/graphql", headers={**evil, "Access-Control-Request-Method": "POST"}, timeout=10
        ),
    }
    assert {name: r.status_code for name, r in attacks.items()} == dict.fromkeys(attacks, 403)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws{url[4:]}/graphql", origin="http://evil.example", subprotocols=["graphql-ws"])
    assert refused.value.response.status_code == 403
    partitions, runs, backfills = instance_state(home)
    assert ".." not in partitions and runs == 0 and backfills == 0


@pytest.mark.integration
def test_the_ui_serves_its_own_pages_and_mutations(ui):
    """What the browser sends from the UI itself passes, so the guard does not just refuse everything."""
    url, home = ui
    assert "<html" in requests.get(url, headers={"Sec-Fetch-Mode": "navigate"}, timeout=10).text.lower()
    browser = {"Origin": url, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    response = post(url, add_partition("legit"), browser)
    assert response.json()["data"]["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"
    assert "legit" in instance_state(home)[0]
    with connect(f"ws{url[4:]}/graphql", origin=url, subprotocols=["graphql-ws"]) as socket:
        socket.send(json.dumps({"type": "connection_init"}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "connection_ack"}
    assert (home / "dagster.yaml").resolve() == INSTANCE_CONFIG


# What a start-up log must not say: Dagster's logged warnings, Python's warnings (UserWarning,
# SupersessionWarning, ...), and what `dagster dev` said at start-up before `mednarratives ui`.
WARNING = re.compile(r"(?i)warn|supersed|deprecat|will not be used|traceback|error")
SEEN_WITH_DAGSTER_DEV = [
    "2026-12-01 10:00:00 +0000 - dagster - WARNING - Found a dagster instance configuration value"
    " (dagster.yaml) in the current folder, but your DAGSTER_HOME environment variable is set to"
    " /repo/data/dagster_home. The dagster.yaml file will not be used to configure Dagster unless it"
    " is placed in the same folder as DAGSTER_HOME.",
    "/venv/lib/python3.11/site-packages/dagster/_cli/dev.py:137: SupersessionWarning: Function"
    " `dev_command` is superseded and its usage is discouraged. Use 'dg dev' instead.",
]


def start_up_log(tmp_path, dagster_home: str | None) -> str:
    """The whole log of `mednarratives ui`, started as the README says, once its daemon has run the
    sensor (the code location loaded in both processes), and stopped with Ctrl-C."""
    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PYTHONWARNINGS")}
    env |= {"MEDNARRATIVES_DATA_ROOT": str(root)} | ({"DAGSTER_HOME": dagster_home} if dagster_home else {})
    log = tmp_path / "ui.log"
    command = [sys.executable, "-m", "mednarratives_assets.cli", "ui", "--port", "{port}"]

    def up(url: str):
        try:
            return requests.get(url, headers={"Sec-Fetch-Mode": "navigate"}, timeout=5).ok
        except requests.ConnectionError:
            return False

    with running_server(command, env, log, up, poll_s=0.5):
        wait_until(lambda: "new_video_sensor" in log.read_text(), 120, "the daemon's first sensor tick", 0.5)
    return log.read_text()


def test_the_warning_pattern_catches_what_dagster_dev_printed():
    assert all(WARNING.search(line) for line in SEEN_WITH_DAGSTER_DEV)


@pytest.mark.integration
@pytest.mark.parametrize("home", ["default", "exported, empty", "default, stale link"])
def test_the_ui_starts_without_warnings_and_with_the_instance_settings(home, tmp_path):
    """`mednarratives ui` with DAGSTER_HOME unset, exported to an empty folder, or holding a link
    that leads nowhere: no warning in its log, and the instance reads the repository's dagster.yaml."""
    folder = tmp_path / "data" / "dagster_home" if home.startswith("default") else tmp_path / "home"
    folder.mkdir(parents=True)
    if home.endswith("stale link"):
        (folder / "dagster.yaml").symlink_to(tmp_path / "moved-away" / "dagster.yaml")
    log = start_up_log(tmp_path, None if home.startswith("default") else str(folder))
    assert "Serving the Dagster UI" in log
    warnings = [line for line in log.splitlines() if WARNING.search(line)]
    assert warnings == [], log
    assert (folder / "dagster.yaml").resolve() == INSTANCE_CONFIG
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
