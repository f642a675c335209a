"""URL ingestion with yt-dlp from a local HTTP server, and channels.yaml validation."""

from __future__ import annotations

import functools
import http.server
import socket
import threading

import dagster as dg
import duckdb
import pytest

from mednarratives_assets.channels import list_video_files
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.stages.video_downloads import (
    MANIFEST_NAME,
    ChannelsFileError,
    download_channel,
    load_channel_urls,
)
from mednarratives_tests.conftest import make_video


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/site on 127.0.0.1 (an ephemeral port); yields the base URL."""
    site = tmp_path / "site"
    site.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_urls_are_downloaded_and_unreachable_ones_become_error_rows(
    tmp_path, layout, resources, instance, http_server
):
    base_url, site = http_server
    make_video(site / "ct_abdomen_lecture.mp4", seconds=1.5)
    good_url = f"{base_url}/ct_abdomen_lecture.mp4"
    dead_url = f"http://127.0.0.1:{closed_port()}/gone.mp4"
    layout.channels_file.write_text(f"web_lectures:\n  - {good_url}\n  - {dead_url}\n")
    instance.add_dynamic_partitions("channel", ["web_lectures"])

    result = dg.materialize(
        [video_downloads, videos], partition_key="web_lectures", resources=resources, instance=instance
    )
    assert result.success
    # The file is on disk now: a re-run must not contact the server again (here: it is gone).
    served = (site / "ct_abdomen_lecture.mp4").rename(tmp_path / "served.mp4")
    result = dg.materialize(
        [video_downloads, videos], partition_key="web_lectures", resources=resources, instance=instance
    )
    assert result.success

    downloaded = layout.channel_dir("web_lectures") / "ct_abdomen_lecture.mp4"
    assert downloaded.read_bytes() == served.read_bytes()
    assert downloaded.with_suffix(".info.json").is_file()
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        downloads = con.sql(
            "SELECT url, status, error, video_id FROM main.video_downloads ORDER BY status DESC"
        ).fetchall()
        video_rows = con.sql(
            "SELECT video_id, status, title, webpage_url, has_audio FROM main.videos"
        ).fetchall()
    assert [(url, status, video_id) for url, status, _, video_id in downloads] == [
        (good_url, "ok", "ct_abdomen_lecture"),
        (dead_url, "error", None),
    ]
    assert downloads[1][2].startswith("download failed:")
    assert video_rows == [("ct_abdomen_lecture", "ok", "ct_abdomen_lecture", good_url, True)]


def test_channel_whose_urls_are_removed_loses_its_download_rows(layout, resources, instance, http_server):
    base_url, site = http_server
    make_video(site / "lecture.mp4")
    layout.channels_file.write_text(f"web:\n  - {base_url}/lecture.mp4\nother:\n  - {base_url}/lecture.mp4\n")
    instance.add_dynamic_partitions("channel", ["web", "other"])
    for channel in ("web", "other"):
        dg.materialize([video_downloads], partition_key=channel, resources=resources, instance=instance)

    layout.channels_file.write_text(f"web:\nother:\n  - {base_url}/lecture.mp4\n")
    result = dg.materialize([video_downloads], partition_key="web", resources=resources, instance=instance)
    assert result.success
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        rows = con.sql("SELECT channel, video_id FROM main.video_downloads").fetchall()
    assert rows == [("other", "lecture")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("web: [unclosed\n", "not valid YAML"),
        ("- http://a/b.mp4\n", "expected a mapping of channel names to URL lists, got list"),
        ("web: 42\n", "channel 'web' must map to a list of URL strings, got 42"),
        ("'bad name!':\n  - http://a/b.mp4\n", "invalid channel name 'bad name!'"),
    ],
)
def test_malformed_channels_file_names_the_file_and_entry(tmp_path, text, message):
    channels_file = tmp_path / "channels.yaml"
    channels_file.write_text(text)
    with pytest.raises(ChannelsFileError, match=message) as raised:
        load_channel_urls(channels_file)
    assert str(channels_file) in str(raised.value)


def test_malformed_channels_file_fails_the_download_asset_clearly(layout, resources, instance):
    layout.channels_file.write_text("web: 42\n")
    instance.add_dynamic_partitions("channel", ["web"])
    result = dg.materialize(
        [video_downloads], partition_key="web", resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node("video_downloads")
    assert "channel 'web' must map to a list of URL strings" in failure.user_failure_data.description


def test_missing_or_empty_channels_file_means_no_urls(tmp_path):
    assert load_channel_urls(tmp_path / "absent.yaml") == {}
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert load_channel_urls(tmp_path / "empty.yaml") == {}


def test_deleting_a_downloaded_file_fetches_its_url_again(layout, http_server):
    base_url, site = http_server
    make_video(site / "lecture.mp4")
    url = f"{base_url}/lecture.mp4"
    first = download_channel(layout.data_root, "web", [url])
    downloaded = layout.data_root / first["path"][0]
    assert (downloaded.parent / MANIFEST_NAME).is_file()

    downloaded.unlink()
    again = download_channel(layout.data_root, "web", [url])
    assert again["status"].to_list() == ["ok"]
    assert downloaded.read_bytes() == (site / "lecture.mp4").read_bytes()
    assert again["downloaded_at"][0] > first["downloaded_at"][0]


def test_a_page_of_videos_is_asked_again_and_yields_its_new_videos(layout, http_server):
    base_url, site = http_server

    def publish(names):
        for name in names:
            make_video(site / f"{name}.mp4")
        sources = "".join(f'<video controls src="{name}.mp4"></video>' for name in names)
        (site / "course.html").write_text(
            f"<html><head><title>Course</title></head><body>{sources}</body></html>"
        )

    publish(["week1", "week2"])
    first = download_channel(layout.data_root, "course", [f"{base_url}/course.html"])
    assert sorted(first["status"]) == ["ok", "ok"]
    assert first["path"].str.starts_with("videos/course/").all()

    publish(["week1", "week2", "week3"])
    second = download_channel(layout.data_root, "course", [f"{base_url}/course.html"])
    assert second.height == 3 and (second["status"] == "ok").all()
    assert len(list_video_files(layout.channel_dir("course"))) == 3
