"""Reading real X11 cursor themes: the Xcursor format, installed themes and their families."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from mednarratives_assets.synthetic.xcursor import (
    ICONS_DIR,
    X11_CURSOR_NAMES,
    cursor_file,
    installed_themes,
    read_xcursor,
    theme_family,
)

IMAGE_TYPE, COMMENT_TYPE = 0xFFFD0002, 0xFFFE0001


def xcursor_bytes(images: list[tuple[int, np.ndarray, tuple[int, int]]], comment: bool = True) -> bytes:
    """An Xcursor file of (nominal size, straight RGBA, hotspot) images, premultiplied as X stores them."""
    chunks = []
    for nominal, rgba, (xhot, yhot) in images:
        h, w = rgba.shape[:2]
        alpha = rgba[..., 3].astype(np.uint32)
        premultiplied = [
            np.round(rgba[..., c].astype(np.float64) * alpha / 255).astype(np.uint32) for c in range(3)
        ]
        argb = (alpha << 24) | (premultiplied[0] << 16) | (premultiplied[1] << 8) | premultiplied[2]
        header = struct.pack("<9I", 36, IMAGE_TYPE, nominal, 1, w, h, xhot, yhot, 50)
        chunks.append((IMAGE_TYPE, nominal, header + argb.astype("<u4").tobytes()))
    if comment:
        text = b"made by hand"
        chunks.insert(0, (COMMENT_TYPE, 1, struct.pack("<5I", 20, COMMENT_TYPE, 1, 1, len(text)) + text))
    position = 16 + 12 * len(chunks)
    table, body = b"", b""
    for kind, subtype, data in chunks:
        table += struct.pack("<3I", kind, subtype, position + len(body))
        body += data
    return b"Xcur" + struct.pack("<3I", 16, 0x10000, len(chunks)) + table + body


def arrow_rgba(size: int, colour: tuple[int, int, int], alpha: int) -> np.ndarray:
    """A triangle pointing up-left, its tip at (1, 1), with a half-transparent edge column."""
    rgba = np.zeros((size, size, 4), np.uint8)
    for row in range(1, size):
        rgba[row, 1 : row + 1] = (*colour, 255)
    rgba[1:, 1, 3] = alpha
    return rgba


def test_a_hand_made_file_reads_back_sizes_hotspots_and_straight_colour(tmp_path):
    small, large = arrow_rgba(16, (200, 100, 50), 128), arrow_rgba(32, (10, 240, 90), 77)
    frame_two = np.full((16, 16, 4), 255, np.uint8)  # an animation's second frame, never returned
    path = tmp_path / "left_ptr"
    path.write_bytes(xcursor_bytes([(32, large, (1, 2)), (16, small, (1, 1)), (16, frame_two, (0, 0))]))

    images = read_xcursor(path)

    assert [image.nominal_size for image in images] == [16, 32]
    assert [image.hotspot for image in images] == [(1, 1), (1, 2)]
    for image, original in zip(images, (small, large), strict=True):
        assert image.rgba.shape == original.shape and image.rgba.dtype == np.uint8
        np.testing.assert_array_equal(image.rgba[..., 3], original[..., 3])
        visible = original[..., 3] > 0
        # straight colour comes back from premultiplied bytes within their rounding
        assert np.abs(image.rgba[visible][:, :3].astype(int) - original[visible][:, :3]).max() <= 2
        assert (image.rgba[~visible] == 0).all()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:40], "cut short"),
        (lambda data: data[:-10], "cut short"),
        (lambda data: b"Xcux" + data[4:], "not an Xcursor file"),
        (lambda data: data[:12] + struct.pack("<I", 10**6) + data[16:], "corrupt"),
        (lambda data: data[:8], "cut short"),
    ],
)
def test_a_damaged_file_is_named(tmp_path, damage, message):
    path = tmp_path / "broken_cursor"
    path.write_bytes(damage(xcursor_bytes([(16, arrow_rgba(16, (0, 0, 0), 255), (1, 1))])))
    with pytest.raises(ValueError, match=message) as error:
        read_xcursor(path)
    assert "broken_cursor" in str(error.value)


def test_a_hotspot_outside_its_image_is_corrupt(tmp_path):
    path = tmp_path / "far_hotspot"
    path.write_bytes(xcursor_bytes([(16, arrow_rgba(16, (0, 0, 0), 255), (16, 3))]))
    with pytest.raises(ValueError, match="far_hotspot.*hotspot"):
        read_xcursor(path)


def write_theme(icons: Path, name: str, cursors: dict[str, str | None], inherits: str = "") -> None:
    """A theme folder: cursor name -> None for a real file, or the name of the file it links to."""
    folder = icons / name / "cursors"
    folder.mkdir(parents=True)
    for cursor, target in cursors.items():
        if target is None:
            (folder / cursor).write_bytes(xcursor_bytes([(24, arrow_rgba(24, (255, 255, 255), 255), (1, 1))]))
        else:
            (folder / cursor).symlink_to(target)
    if inherits:
        (icons / name / "index.theme").write_text(f"[Icon Theme]\nName={name}\nInherits={inherits}\n")


def test_installed_themes_follow_links_fallback_names_and_inheritance(tmp_path):
    icons = tmp_path / "icons"
    write_theme(icons, "Base", {"left_ptr": None, "hand1": None, "cross": "left_ptr", "text": "hand1"})
    write_theme(icons, "Child", {"default": None}, inherits='"Base"')
    write_theme(icons, "Broken", {"left_ptr": "missing", "hand2": None, "crosshair": None, "xterm": None})
    (icons / "hicolor").mkdir()  # an icon theme without cursors

    themes = installed_themes(icons)

    assert themes == {"Base": icons / "Base" / "cursors", "Child": icons / "Child" / "cursors"}
    assert cursor_file("Base", "crosshair", icons) == (icons / "Base" / "cursors" / "left_ptr").resolve()
    assert cursor_file("Child", "arrow", icons).parent == (icons / "Child" / "cursors").resolve()
    assert cursor_file("Child", "ibeam", icons) == (icons / "Base" / "cursors" / "hand1").resolve()
    with pytest.raises(ValueError, match="'Broken' has no arrow cursor"):
        cursor_file("Broken", "arrow", icons)
    assert installed_themes(tmp_path / "nowhere") == {}


def test_themes_fall_into_families():
    assert theme_family("DMZ-White") == theme_family("DMZ-Black") == "dmz"
    assert theme_family("Bibata-Modern-Ice") == theme_family("Bibata-Original-Amber") == "bibata"
    assert theme_family("oxy-white") == "oxygen" and theme_family("crystalblueleft_nonanim") == "crystal"
    assert theme_family("redglass") == theme_family("whiteglass") == "glass"
    assert theme_family("Breeze_Snow") == theme_family("breeze_cursors") == "breeze"
    assert theme_family("ComixCursors-Opaque-Slim-Red") == "comix"
    assert theme_family("Chameleon-Pearl-Small") == "chameleon"
    assert theme_family("handhelds") == "handhelds"


def test_every_installed_theme_reads_for_every_shape():
    themes = installed_themes()
    if not themes:
        pytest.skip(f"no X11 cursor theme is installed under {ICONS_DIR} (see .ci/run)")
    for theme in themes:
        for shape in X11_CURSOR_NAMES:
            images = read_xcursor(cursor_file(theme, shape))
            sizes = [image.nominal_size for image in images]
            assert sizes == sorted(set(sizes)), (theme, shape)
            for image in images:
                h, w = image.rgba.shape[:2]
                assert 0 <= image.hotspot[0] < w and 0 <= image.hotspot[1] < h, (theme, shape)
                assert (image.rgba[..., 3] >= 128).sum() > 10, (theme, shape)
