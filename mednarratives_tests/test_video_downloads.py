"""URL ingestion with yt-dlp from a local HTTP server, the download size limit, and channels.yaml
read entry by entry."""

from __future__ import annotations

import errno
import functools
import http.server
import socket
import threading
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from mednarratives_assets.channels import CHANNEL_NAME_RULE, list_video_files
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.stages.video_downloads import (
    MANIFEST_NAME,
    ChannelsFileError,
    DownloadSettings,
    download_channel,
    download_failures,
    read_channels_file,
)
from mednarratives_tests.conftest import make_video, step_failure


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site's files; those under `unsized/` without a Content-Length, as a server that
    streams does, so that only the size on disk can tell how large they are."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.startswith("/unsized/"):
            return super().do_GET()
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True
        return None


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


def test_each_bad_channels_file_entry_is_reported_on_its_own(tmp_path):
    channels_file = tmp_path / "channels.yaml"
    channels_file.write_text(
        "good:\n  - http://127.0.0.1:9/a.mp4\n"
        "empty:\n"
        "web: 42\n"
        "single: http://127.0.0.1:9/b.mp4\n"
        "items:\n  - http://127.0.0.1:9/c.mp4\n  - 42\n"
        "'bad name!':\n  - http://127.0.0.1:9/d.mp4\n"
        "'../escape':\n  - http://127.0.0.1:9/e.mp4\n"
        "2024:\n  - http://127.0.0.1:9/f.mp4\n"
    )
    read = read_channels_file(channels_file)
    assert read.error is None
    assert read.urls == {"good": ["http://127.0.0.1:9/a.mp4"], "empty": []}
    assert set(read.bad_entries) == {"web", "single", "items", "2024"}
    assert (
        read.bad_entries["web"] == f"{channels_file}: channel 'web' must map to a list of URL strings, got 42"
    )
    assert "write it as a list item" in read.bad_entries["single"]
    assert "item 2 is 42" in read.bad_entries["items"]
    assert "quote it" in read.bad_entries["2024"]
    assert len(read.skipped) == 2
    for message in read.skipped:
        assert str(channels_file) in message and CHANNEL_NAME_RULE in message
    assert "'bad name!'" in read.skipped[0] and "'../escape'" in read.skipped[1]
    # Bad entries stay channels (their downloads fail, naming the entry); bad names do not.
    assert set(read.channels) == {"good", "empty", "web", "single", "items", "2024"}
    assert read.urls_of("good", downloaded_before=True) == ["http://127.0.0.1:9/a.mp4"]
    assert read.urls_of("local_only", downloaded_before=False) == []
    with pytest.raises(ChannelsFileError, match="channel 'web' must map to a list of URL strings"):
        read.urls_of("web", downloaded_before=False)
    assert len(read.problems) == 6


def test_a_huge_aliased_value_is_quoted_short(tmp_path):
    nested = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    channels_file = tmp_path / "channels.yaml"
    channels_file.write_text(nested)
    read = read_channels_file(channels_file)  # entry i nests 10 * 8**8 strings, shared by reference
    assert list(read.urls) == ["a"] and set(read.bad_entries) == set("bcdefghi")
    assert all(len(message) < 400 for message in read.bad_entries.values())


@pytest.mark.parametrize(
    "content, message",
    [
        (b"web: [unclosed\n", "not valid YAML"),
        (b"- http://a/b.mp4\n", "expected a mapping of channel names to URL lists, got list"),
        (b"just some words\n", "expected a mapping of channel names to URL lists, got str"),
        (b"web:\n  - http://a/\xff\xfe.mp4\n", "not UTF-8 text"),
    ],
)
def test_a_channels_file_that_is_no_mapping_names_the_file(tmp_path, content, message):
    channels_file = tmp_path / "channels.yaml"
    channels_file.write_bytes(content)
    read = read_channels_file(channels_file)
    assert message in read.error and str(channels_file) in read.error
    assert read.urls == {} and read.channels == {}
    assert read.urls_of("neuro", downloaded_before=False) == []  # a local folder goes on
    with pytest.raises(ChannelsFileError, match=message):
        read.urls_of("web", downloaded_before=True)  # a URL channel cannot


def test_a_bad_entry_fails_only_its_own_channel(layout, resources, instance, http_server):
    base_url, site = http_server
    make_video(site / "lecture.mp4")
    layout.channels_file.write_text(
        f"web: 42\n'bad name!':\n  - {base_url}/lecture.mp4\nother:\n  - {base_url}/lecture.mp4\n"
    )
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    instance.add_dynamic_partitions("channel", ["web", "other", "neuro"])

    failed = dg.materialize(
        [video_downloads], partition_key="web", resources=resources, instance=instance, raise_on_error=False
    )
    assert not failed.success
    description = failed.failure_data_for_node("video_downloads").user_failure_data.description
    assert description == (f"{layout.channels_file}: channel 'web' must map to a list of URL strings, got 42")
    for channel in ("other", "neuro"):
        result = dg.materialize(
            [video_downloads, videos], partition_key=channel, resources=resources, instance=instance
        )
        assert result.success
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        downloads = con.sql("SELECT channel, status FROM main.video_downloads").fetchall()
        probed = con.sql("SELECT channel, video_id, status FROM main.videos ORDER BY channel").fetchall()
    assert downloads == [("other", "ok")]
    assert probed == [("neuro", "mri", "ok"), ("other", "lecture", "ok")]


def test_a_broken_channels_file_fails_url_channels_only(layout, resources, instance, http_server):
    base_url, site = http_server
    make_video(site / "lecture.mp4")
    layout.channels_file.write_text(f"web:\n  - {base_url}/lecture.mp4\n")
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    instance.add_dynamic_partitions("channel", ["web", "neuro"])
    assert dg.materialize(
        [video_downloads], partition_key="web", resources=resources, instance=instance
    ).success

    layout.channels_file.write_text(f"web: [{base_url}/lecture.mp4\n")  # unclosed
    failed = dg.materialize(
        [video_downloads], partition_key="web", resources=resources, instance=instance, raise_on_error=False
    )
    assert not failed.success
    description = failed.failure_data_for_node("video_downloads").user_failure_data.description
    assert "not valid YAML" in description and str(layout.channels_file) in description
    assert "stored downloads are kept" in description
    local = dg.materialize(
        [video_downloads, videos], partition_key="neuro", resources=resources, instance=instance
    )
    assert local.success
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        downloads = con.sql("SELECT channel, video_id FROM main.video_downloads").fetchall()
    assert downloads == [("web", "lecture")]  # the failed run replaced nothing


def test_missing_or_empty_channels_file_means_no_urls(tmp_path):
    assert read_channels_file(tmp_path / "absent.yaml").channels == {}
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    read = read_channels_file(tmp_path / "empty.yaml")
    assert read.channels == {} and read.problems == []


def test_a_file_above_the_size_limit_is_not_kept(layout, http_server):
    base_url, site = http_server
    make_video(site / "small.mp4")
    (site / "big.mp4").write_bytes(b"\0" * (3 * 2**20 // 2))  # 1.5 MB, announced by Content-Length
    (site / "unsized").mkdir()
    (site / "unsized" / "stream.mp4").write_bytes(b"\0" * (3 * 2**20 // 2))  # 1.5 MB, unannounced
    urls = [f"{base_url}/small.mp4", f"{base_url}/big.mp4", f"{base_url}/unsized/stream.mp4"]
    frame = download_channel(layout, "web", urls, DownloadSettings(max_download_mb=1))

    rows = {row["url"].rsplit("/", 1)[1]: row for row in frame.iter_rows(named=True)}
    assert rows["small.mp4"]["status"] == "ok"
    assert rows["big.mp4"]["status"] == "error"
    assert rows["big.mp4"]["error"] == "larger than the limit of 1 MB (max_download_mb); not downloaded"
    assert rows["stream.mp4"]["status"] == "error"
    assert rows["stream.mp4"]["error"].startswith("larger than the limit of 1 MB (max_download_mb): 1.5 MB")
    assert rows["big.mp4"]["path"] is None and rows["stream.mp4"]["video_id"] == "stream"
    channel_dir = layout.channel_dir("web")
    assert sorted(p.name for p in channel_dir.iterdir()) == [MANIFEST_NAME, "small.info.json", "small.mp4"]
    # A refused URL is not remembered as done: it is asked again (here, with a larger limit).
    again = download_channel(layout, "web", urls, DownloadSettings(max_download_mb=2))
    assert again["status"].to_list() == ["ok", "ok", "ok"]


def test_the_size_limit_is_asset_config_and_checked(layout, resources, instance, http_server):
    base_url, site = http_server
    (site / "big.mp4").write_bytes(b"\0" * (3 * 2**20 // 2))
    layout.channels_file.write_text(f"web:\n  - {base_url}/big.mp4\n")
    instance.add_dynamic_partitions("channel", ["web"])

    def run(limit):
        return dg.materialize(
            [video_downloads],
            partition_key="web",
            resources=resources,
            instance=instance,
            run_config={"ops": {"video_downloads": {"config": {"max_download_mb": limit}}}},
            raise_on_error=False,
        )

    assert "max_download_mb=0: must be above 0 MB" in step_failure(run(0))
    assert run(1).success
    assert download_failures(layout.duckdb_path, ["web", "other"]) == {
        "web": f"1 of 1 downloads failed: {base_url}/big.mp4: larger than the limit of 1 MB "
        "(max_download_mb); not downloaded"
    }
    assert run(2).success and download_failures(layout.duckdb_path, ["web"]) == {}


def test_a_stale_temporary_beside_the_manifest_is_no_obstacle(layout, http_server):
    base_url, site = http_server
    make_video(site / "lecture.mp4")
    channel_dir = layout.channel_dir("web")
    (channel_dir / f"{MANIFEST_NAME}.tmp").mkdir(parents=True)  # the old fixed temporary name, taken
    frame = download_channel(layout, "web", [f"{base_url}/lecture.mp4"])
    assert frame["status"].to_list() == ["ok"]
    assert (channel_dir / MANIFEST_NAME).is_file()
    assert not [p for p in channel_dir.iterdir() if p.name.endswith(".partial")]


def test_deleting_a_downloaded_file_fetches_its_url_again(layout, http_server):
    base_url, site = http_server
    make_video(site / "lecture.mp4")
    url = f"{base_url}/lecture.mp4"
    first = download_channel(layout, "web", [url])
    downloaded = layout.data_root / first["path"][0]
    assert (downloaded.parent / MANIFEST_NAME).is_file()

    downloaded.unlink()
    again = download_channel(layout, "web", [url])
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
    first = download_channel(layout, "course", [f"{base_url}/course.html"])
    assert sorted(first["status"]) == ["ok", "ok"]
    assert first["path"].str.starts_with("videos/course/").all()

    publish(["week1", "week2", "week3"])
    second = download_channel(layout, "course", [f"{base_url}/course.html"])
    assert second.height == 3 and (second["status"] == "ok").all()
    assert len(list_video_files(layout.channel_dir("course"))) == 3


def test_a_full_disk_fails_the_step_instead_of_becoming_a_row(
    layout, resources, instance, http_server, monkeypatch
):
    from yt_dlp.downloader.http import HttpFD

    base_url, site = http_server
    make_video(site / "lecture.mp4")
    make_video(site / "other.mp4")
    layout.channels_file.write_text(f"web:\n  - {base_url}/lecture.mp4\n  - {base_url}/other.mp4\n")
    instance.add_dynamic_partitions("channel", ["web"])

    def no_space(self, filename, info_dict):
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(HttpFD, "real_download", no_space)
    result = dg.materialize(
        [video_downloads], partition_key="web", resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    message = step_failure(result)
    assert "No space left on device" in message and "lecture" in message
    assert not layout.duckdb_path.exists() or download_failures(layout.duckdb_path, ["web"]) == {}


def test_a_refused_connection_is_still_a_row(layout):
    frame = download_channel(layout, "web", [f"http://127.0.0.1:{closed_port()}/gone.mp4"])
    assert frame["status"].to_list() == ["error"]
