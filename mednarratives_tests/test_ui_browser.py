"""The Dagster UI in a real browser, clicked through as a user would: Debian's Chromium, driven by
Playwright, against `mednarratives ui` over a tiny demo corpus that `mednarratives demo` made.

The tests of this module share one UI and run in file order, each one step:

1. one partition of `videos`, materialized from the asset's page (Materialize…, Launch 1 run);
2. a backfill of `videos` over every channel, from the same dialog (All, Launch backfill);
3. new_video_sensor's run for a channel folder that appears while the UI runs;
4. declarative automation bringing a channel's downstream assets up to date after its `videos`
   is materialized from the UI (the automation sensor switched on from its page if it is off;
   skipped while no asset after `videos` has an automation condition).

Each waits for its runs to succeed (the instance's run and backfill records: generous timeouts,
since 2 shared cores also run the steps), then checks in the browser that the asset's page shows
the run, a row count, the metadata table and a picture. A PNG of each step goes to
MEDNARRATIVES_SCREENSHOTS (default: a temporary folder). Those named like docs/images/ui-*.png
show the same pages, so `MEDNARRATIVES_SCREENSHOTS=docs/images` makes them anew; with
MEDNARRATIVES_BROWSER_FULL_DEMO=1 the corpus is the default demo's (3 channels of 2 lectures at
1280x720, about 1.5 minutes more), as the README's pictures show.

Chromium is the system's (`apt-get install chromium`; .ci/run installs it): Playwright never
downloads a browser here. MEDNARRATIVES_CHROMIUM names another binary.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import requests

from mednarratives_assets.settings import INSTANCE_CONFIG, REPO_ROOT
from mednarratives_tests.servers import running_server, wait_until

CHROMIUM = Path(os.environ.get("MEDNARRATIVES_CHROMIUM", "/usr/bin/chromium"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,  # and so slow (conftest.py)
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: apt-get install chromium"),
]

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

TINY_DEMO = ["--channels", "2", "--videos-per-channel", "1", "--seconds", "15", "--size", "320x240"]
TINY_DEMO += ["--fps", "10"]
LOCATION = "mednarratives_assets.definitions"
NEW_CHANNEL = "sensor-lectures"  # the folder that appears while the UI runs (step 3)
RUN_TIMEOUT_S = 240  # one channel's run on 2 busy cores: seconds on the tiny corpus, minutes on the full
SENSOR_TIMEOUT_S = 120  # new_video_sensor ticks every 30 s
UI_TIMEOUT_MS = 60_000  # a busy machine renders the UI's pages slowly
VIEWPORT = {"width": 1500, "height": 1000}

REPOSITORIES = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
AUTOMATION_CONDITIONS = "{ assetNodes { assetKey { path } automationCondition { label } } }"


def graphql(url: str, query: str) -> dict:
    """What the UI's own GraphQL answers (a JSON POST, which the cross-site guard lets through)."""
    response = requests.post(f"{url}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = os.environ.get("MEDNARRATIVES_SCREENSHOTS")
    folder = Path(folder).resolve() if folder else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`mednarratives ui` on a free loopback port over a materialized demo corpus; yields the URL,
    the data root and DAGSTER_HOME, once the sensor's first tick has found the demo's channels current."""
    base = tmp_path_factory.mktemp("browser")
    root, home = base / "data", base / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MEDNARRATIVES_DATA_ROOT": str(root)}
    demo_args = [] if os.environ.get("MEDNARRATIVES_BROWSER_FULL_DEMO") == "1" else TINY_DEMO
    # With DAGSTER_HOME set, the demo's runs are recorded in the instance the UI shows.
    demo = subprocess.run(
        [sys.executable, "-m", "mednarratives_assets.cli", "demo", *demo_args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    command = [sys.executable, "-m", "mednarratives_assets.cli", "ui", "--port", "{port}"]

    def up(url: str):
        try:  # the code location is loaded
            return graphql(url, REPOSITORIES)["repositoriesOrError"].get("nodes")
        except requests.ConnectionError:
            return False

    with running_server(command, env, base / "ui.log", up, poll_s=0.5) as url:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # The first UI start after the demo runs nothing: the sensor's first tick finds every
            # channel's files as its last successful `videos` materialization recorded them.
            log = base / "ui.log"
            wait_until(
                lambda: SENSOR_TICKED.search(log.read_text(errors="replace")) or sensor_runs(instance),
                SENSOR_TIMEOUT_S,
                "the sensor's first tick",
            )
            assert not sensor_runs(instance), (
                "the sensor ran the demo's channels again, though they are current"
            )
            wait_until(lambda: all_finished(instance), RUN_TIMEOUT_S * 2, "runs the automation started", 2)
            yield url, root, instance


# The daemon's log line for a tick of the new-video sensor that launched nothing.
SENSOR_TICKED = re.compile(r"Sensor new_video_sensor skipped|No run requests returned for new_video_sensor")


def sensor_runs(instance: dg.DagsterInstance, channel: str | None = None) -> list[dg.DagsterRun]:
    tags = {"dagster/sensor_name": "new_video_sensor"} | ({"dagster/partition": channel} if channel else {})
    return instance.get_runs(filters=dg.RunsFilter(tags=tags))


def all_finished(instance: dg.DagsterInstance) -> bool:
    return all(run.is_finished for run in instance.get_runs())


def wait_for_success(instance: dg.DagsterInstance, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> None:
    run = wait_until(
        lambda: (r := instance.get_run_by_id(run_id)) and r.is_finished and r, timeout_s, f"run {run_id}", 2
    )
    assert run.status == dg.DagsterRunStatus.SUCCESS, f"run {run_id}: {run.status}"


def run_id_from_prefix(instance: dg.DagsterInstance, prefix: str) -> str:
    """The UI names runs by their first 8 characters."""
    [run_id] = [run.run_id for run in instance.get_runs() if run.run_id.startswith(prefix)]
    return run_id


@pytest.fixture(scope="module")
def page(ui, screenshots):
    with playwright_api.sync_playwright() as playwright:
        # Playwright drives the system's Chromium: no browser download (launch() would look
        # for its own build under ~/.cache/ms-playwright otherwise). Chromium's Debian wrapper
        # script may print a harmless "[: ...: unexpected operator" to stderr.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        # Fragile spot: on an instance's first visit Dagster opens a "Join the Dagster community"
        # dialog (a newsletter form) over whatever page is open, once the page has loaded; it
        # then remembers (DAGSTER_HOME/.nux) that it was seen. The handler skips it whenever it
        # would block a click.
        page.add_locator_handler(
            page.get_by_role("dialog").filter(has_text="Join the Dagster community"),
            lambda dialog: dialog.get_by_role("button", name="Skip").click(),
        )
        try:
            yield page
        finally:
            context.close()
            browser.close()


def goto(page, url: str) -> None:
    page.goto(url)
    # The UI is one React app: the left navigation shows once it has started.
    expect(page.get_by_role("link", name="Catalog")).to_be_visible()


def open_partition(page, url: str, asset: str, partition: str) -> None:
    """The asset's Partitions tab, with `partition` chosen in its list."""
    goto(page, f"{url}/assets/{asset}")
    page.get_by_role("tab", name="Partitions").click()
    # Fragile spot: the list middle-truncates long names and keeps a hidden copy of each name to
    # measure it, so the text matches twice; only the visible one can be clicked.
    page.get_by_text(partition, exact=True).filter(visible=True).click()
    expect(page).to_have_url(re.compile(rf"partition={re.escape(partition)}"))


def open_materialize_dialog(page, asset: str):
    """Materialize… on the asset's page; returns the launch dialog."""
    page.get_by_role("button", name="Materialize…").click()
    launch = page.get_by_role("dialog").filter(has_text=f"Launch runs to materialize {asset}")
    confirm = page.get_by_role("dialog").filter(has_text="Are you sure?")
    # Assets downstream of the models (stable_chunks reads frame_classifier) first ask to confirm:
    # the models are never materialized here, the stages use the ones that ship with the package.
    expect(launch.or_(confirm)).to_be_visible()
    if confirm.is_visible():
        confirm.get_by_role("button", name="Confirm").click()
    expect(launch).to_be_visible()
    return launch


def toast_id(page, pattern: str) -> str:
    """The id in the toast the UI shows after a launch ("Launched run 1a2b3c4d")."""
    toast = page.get_by_text(re.compile(pattern))
    expect(toast).to_be_visible()
    return re.search(pattern, toast.inner_text()).group(1)


def check_partition_page(page, shot: Path | None, expect_rows: int | None, picture: str) -> int:
    """The open partition shows a row count, the metadata table and `picture` (a PNG behind
    "[Show Markdown]"); returns the row count. With `shot`, screenshots the page there, and the
    picture beside it (`-picture.png`)."""
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    table = page.get_by_role("table").filter(has_text="dagster/row_count").first
    expect(table).to_be_visible()
    row_count = table.get_by_role("row").filter(has=page.get_by_text("dagster/row_count", exact=True))
    n_rows = int(re.search(r"\d+", row_count.inner_text().replace("dagster/row_count", "")).group())
    if expect_rows is not None:
        assert n_rows == expect_rows
    if shot:
        page.screenshot(path=shot)
    # Dagster has no image metadata: each stage's picture is markdown with a data: URL, behind a
    # "[Show Markdown]" link in its metadata row (the row's first cell is the metadata key).
    picture_row = table.get_by_role("row").filter(has=page.get_by_text(picture, exact=True))
    picture_row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has_text=picture)
    image = dialog.locator("img[src^='data:image/png']").first
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") > 0
    if shot:
        page.screenshot(path=shot.with_name(shot.stem + "-picture.png"))
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    return n_rows


def channels_of(instance: dg.DagsterInstance) -> list[str]:
    return sorted(instance.get_dynamic_partitions("channel"))


def n_videos(root: Path, channel: str) -> int:
    """The rows `videos` has for the channel: one per file."""
    return len(list((root / "videos" / channel).glob("*.mp4")))


def test_1_one_partition_from_the_asset_page(ui, page, screenshots):
    url, root, instance = ui
    channel = channels_of(instance)[-1]
    goto(page, f"{url}/assets/videos")
    page.get_by_role("tab", name="Lineage").click()
    # The graph is drawn in SVG: its nodes show the asset names as text.
    expect(page.get_by_text("video_downloads", exact=True).first).to_be_visible()
    expect(page.get_by_text("transcripts", exact=True).first).to_be_visible()
    page.screenshot(path=screenshots / "ui-asset-graph.png")

    open_partition(page, url, "videos", channel)
    dialog = open_materialize_dialog(page, "videos")
    # The partition chosen in the list is the dialog's selection.
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    dialog.get_by_role("button", name=re.compile(r"^Launch 1 run")).click()
    run_id = run_id_from_prefix(instance, toast_id(page, r"Launched run ([0-9a-f]{8})"))
    wait_for_success(instance, run_id)
    assert instance.get_run_by_id(run_id).tags["dagster/partition"] == channel

    goto(page, f"{url}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    open_partition(page, url, "videos", channel)
    # The latest materialization is this run's (the UI links the run by its id's first 8 characters).
    expect(page.get_by_role("link", name=run_id[:8])).to_be_visible()
    check_partition_page(
        page, screenshots / "ui-demo-partitions.png", n_videos(root, channel), "first_frames"
    )


def test_2_backfill_over_every_channel(ui, page, screenshots):
    """A backfill of `videos`: the channel stages after it draw their pictures only for the videos
    they compute, and here every video comes from their caches; `videos` always draws its own."""
    url, root, instance = ui
    channels = channels_of(instance)
    goto(page, f"{url}/assets/videos")
    page.get_by_role("tab", name="Partitions").click()
    dialog = open_materialize_dialog(page, "videos")
    dialog.get_by_role("button", name="All", exact=True).click()
    expect(dialog.get_by_text(f"{len(channels)} partitions", exact=True)).to_be_visible()
    page.screenshot(path=screenshots / "ui-backfill-dialog.png")
    dialog.get_by_role("button", name="Launch backfill").click()
    backfill_id = toast_id(page, r"Created backfill ([a-z]{8})")

    def done():
        backfill = instance.get_backfill(backfill_id)
        return backfill if backfill.status.value not in ("REQUESTED", "CANCELING", "FAILING") else None

    backfill = wait_until(done, RUN_TIMEOUT_S * len(channels), f"backfill {backfill_id}", 2)
    assert backfill.status.value in ("COMPLETED", "COMPLETED_SUCCESS"), backfill.status
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert sorted(run.tags["dagster/partition"] for run in runs) == channels
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}

    goto(page, f"{url}/runs/b/{backfill_id}")
    expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
    page.screenshot(path=screenshots / "ui-backfill.png")
    for channel in channels:
        open_partition(page, url, "videos", channel)
        run_id = next(run.run_id for run in runs if run.tags["dagster/partition"] == channel)
        expect(page.get_by_role("link", name=run_id[:8])).to_be_visible()
        shot = screenshots / "ui-backfill-videos.png" if channel == channels[0] else None
        check_partition_page(page, shot, n_videos(root, channel), "first_frames")


def test_3_sensor_runs_a_new_channel(ui, page, screenshots):
    url, root, instance = ui
    assert NEW_CHANNEL not in channels_of(instance)
    source = sorted((root / "videos").glob("*/*.mp4"))[0]
    (root / "videos" / NEW_CHANNEL).mkdir()
    shutil.copy(source, root / "videos" / NEW_CHANNEL / source.name)

    [run] = wait_until(lambda: sensor_runs(instance, NEW_CHANNEL), SENSOR_TIMEOUT_S, "the sensor's run", 2)
    wait_for_success(instance, run.run_id)
    assert NEW_CHANNEL in channels_of(instance)

    goto(page, f"{url}/overview")
    page.get_by_role("link", name="Automation").click()
    page.get_by_role("link", name="new_video_sensor").click()
    expect(page).to_have_url(re.compile(r"/sensors/new_video_sensor"))
    # The tick that requested the run links it by its id's first 8 characters.
    expect(page.get_by_role("link", name=run.run_id[:8])).to_be_visible()
    page.screenshot(path=screenshots / "ui-sensor-run.png")

    open_partition(page, url, "videos", NEW_CHANNEL)
    expect(page.get_by_role("link", name=run.run_id[:8])).to_be_visible()
    check_partition_page(page, screenshots / "ui-sensor-channel.png", 1, "first_frames")
    # The run went on past videos: the new channel's last stage has its rows too.
    open_partition(page, url, "dataset_export", NEW_CHANNEL)
    expect(page.get_by_role("link", name=run.run_id[:8])).to_be_visible()


# The channel assets after `videos` that automation keeps up to date.
DOWNSTREAM = (
    "stable_chunks",
    "transcripts",
    "cursor_traces",
    "narratives",
    "aligned_pairs",
    "dataset_export",
)


def test_4_automation_updates_downstream(ui, page, screenshots):
    url, _, instance = ui
    nodes = graphql(url, AUTOMATION_CONDITIONS)["assetNodes"]
    automated = {node["assetKey"]["path"][-1] for node in nodes if node["automationCondition"]}
    if not automated & set(DOWNSTREAM):
        pytest.skip(
            "no channel asset after videos has an automation condition on this branch (declarative "
            "automation is being added separately); this step then checks it updates them"
        )
    channel = channels_of(instance)[0]
    goto(page, f"{url}/automation")
    expect(page.get_by_role("link", name="new_video_sensor")).to_be_visible()
    # The automation conditions are evaluated by automation_sensor (defs/automation.py), which
    # starts running. Fragile spot: its page has one checkbox, its "Running" switch, an <input>
    # hidden under a drawing of a switch.
    page.get_by_role("link", name="automation_sensor").click()
    switch = page.get_by_role("checkbox")
    expect(switch).to_have_count(1)
    expect(switch).to_be_checked()
    page.screenshot(path=screenshots / "ui-automation.png")

    open_partition(page, url, "videos", channel)
    open_materialize_dialog(page, "videos").get_by_role("button", name=re.compile(r"^Launch 1 run")).click()
    run_id = run_id_from_prefix(instance, toast_id(page, r"Launched run ([0-9a-f]{8})"))
    wait_for_success(instance, run_id)
    after = instance.get_run_record_by_id(run_id).end_time

    def latest(asset: str):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[channel]), limit=1
        ).records
        return records[0] if records else None

    def up_to_date() -> bool:
        return all((r := latest(asset)) and r.timestamp > after for asset in automated & set(DOWNSTREAM))

    wait_until(up_to_date, RUN_TIMEOUT_S * 2, f"automation to update {channel}'s assets after videos", 5)
    last = sorted(automated & set(DOWNSTREAM), key=DOWNSTREAM.index)[-1]
    run_id = latest(last).run_id
    wait_for_success(instance, run_id)
    assert instance.get_run_by_id(run_id).tags.get("dagster/from_automation_condition") == "true"
    open_partition(page, url, last, channel)
    # The partition's latest materialization is the automation's run.
    expect(page.get_by_role("link", name=run_id[:8])).to_be_visible()
    page.screenshot(path=screenshots / "ui-automation-updated.png")
