"""The pointer axis of the style space: drawn, X11 and laser sprites, sub-pixel pasting, behaviours
and the detector's crops."""

from __future__ import annotations

import numpy as np
import pytest

from mednarratives_assets.synthetic.classifier_frames import shrink_picture
from mednarratives_assets.synthetic.cursor_crops import (
    CROP_PX,
    SPRITE_HEIGHTS,
    cursor_crops,
    random_cursor_style,
)
from mednarratives_assets.synthetic.medical_images import packaged_images
from mednarratives_assets.synthetic.pointers import (
    CURSOR_SHAPES,
    CURSOR_THEMES,
    LASER_THEMES,
    CursorSprite,
    CursorStyle,
    CursorTrack,
    paste_sprite,
    pointer_themes,
    render_sprite,
    sprite_coverage,
    theme_family,
)
from mednarratives_assets.synthetic.xcursor import cursor_file, installed_themes, read_xcursor

FLOAT_POSITIONS = [(100.0, 80.0), (100.3, 80.7), (57.77, 61.25), (140.5, 33.01)]


def installed(*wanted: str) -> str:
    """The first of the wanted X11 themes that is installed, else skip."""
    for theme in wanted:
        if theme in installed_themes():
            return theme
    pytest.skip(f"none of the X11 cursor themes {wanted} is installed (see .ci/run)")


def coverage_after_paste(sprite: CursorSprite, x: float, y: float) -> np.ndarray:
    """The sprite's opacity as seen in a frame: a white copy pasted on black."""
    white = sprite.rgba.copy()
    white[..., :3] = 255
    frame = np.zeros((200, 200, 3), np.uint8)
    paste_sprite(frame, CursorSprite(white, sprite.hotspot), x, y)
    return frame[..., 0] / 255.0


def drawn_arrow_tip(cover: np.ndarray, size: int) -> tuple[float, float]:
    """Where the vertical left edge of a drawn arrow meets its 45-degree edge, from coverage alone.

    Below the tip each row covers (row centre - tip) pixels of the diagonal part, and a row of the
    straight part is transparent up to the left edge.
    """
    top = np.flatnonzero(cover.sum(axis=1) > 0.01)[0]
    diagonal_rows = np.arange(top + round(0.12 * size) + 1, top + round(0.45 * size))
    tip_y = float(np.mean(diagonal_rows - cover[diagonal_rows].sum(axis=1)))
    left_edges = []
    for row in range(top + round(0.3 * size), top + round(0.5 * size)):
        inside = np.flatnonzero(cover[row] > 0.999)[0]
        left_edges.append(inside - 0.5 - cover[row, :inside].sum())
    return float(np.mean(left_edges)), tip_y


@pytest.mark.parametrize("size", [12, 24, 37, 64])
@pytest.mark.parametrize("position", FLOAT_POSITIONS)
def test_a_drawn_arrow_lands_its_tip_on_a_float_position(size, position):
    sprite = render_sprite(CursorStyle("arrow", "dark", size))
    tip = drawn_arrow_tip(coverage_after_paste(sprite, *position), size)
    assert np.hypot(tip[0] - position[0], tip[1] - position[1]) < 0.25, tip


@pytest.mark.parametrize("theme", LASER_THEMES)
@pytest.mark.parametrize("position", FLOAT_POSITIONS)
def test_a_laser_dot_is_centred_on_a_float_position(theme, position):
    cover = coverage_after_paste(render_sprite(CursorStyle("dot", theme, 21)), *position)
    ys, xs = np.indices(cover.shape)
    centre = ((cover * xs).sum() / cover.sum(), (cover * ys).sum() / cover.sum())
    assert np.hypot(centre[0] - position[0], centre[1] - position[1]) < 0.25, centre


def test_a_laser_dot_glows_in_its_colour_around_a_bright_core():
    red = render_sprite(CursorStyle("dot", "laser-red", 31))
    green = render_sprite(CursorStyle("dot", "laser-green", 31))
    hx, hy = (round(v) for v in red.hotspot)
    assert red.rgba[hy, hx, 3] == 255 and red.rgba[hy, hx, :3].min() > 180  # a nearly white core
    ring = red.rgba[hy, hx + 9]
    assert 0 < ring[3] < 200 and ring[0] > 200 and ring[1] < 120  # a red glow fading out
    assert green.rgba[hy, hx + 9, 1] > 200 and green.rgba[hy, hx + 9, 0] < 120
    assert red.rgba[0, 0, 3] < 10  # the glow fades to nothing at the sprite's corner


def test_x11_arrows_point_with_the_tip_of_the_theme_within_a_pixel():
    theme = installed("DMZ-White", "Adwaita", "Bibata-Modern-Ice", "whiteglass")
    for size in (24, 30, 48):
        sprite = render_sprite(CursorStyle("arrow", theme, size))
        for x, y in FLOAT_POSITIONS:
            cover = coverage_after_paste(sprite, x, y)
            ys, xs = np.nonzero(cover >= 0.5)
            assert np.hypot(xs - x, ys - y).min() <= 1.0, (size, x, y)


def test_x11_sprites_use_the_next_larger_image_scaled_to_the_size_with_their_hotspot():
    theme = installed("DMZ-White", "Adwaita", "Bibata-Modern-Ice")
    images = read_xcursor(cursor_file(theme, "hand"))
    native = images[-1]  # the largest size, e.g. 48
    below = native.nominal_size - 5
    chosen = min((image for image in images if image.nominal_size >= below), key=lambda im: im.nominal_size)

    exact = render_sprite(CursorStyle("hand", theme, native.nominal_size))
    assert exact.hotspot == tuple(float(v) for v in native.hotspot)
    np.testing.assert_array_equal(exact.rgba, native.rgba)

    scaled = render_sprite(CursorStyle("hand", theme, below))
    scale = below / chosen.nominal_size
    assert scaled.rgba.shape[0] == round(chosen.rgba.shape[0] * scale)
    # resampling keeps where the hotspot sits within the picture: compare against opacity's centroid
    for image, sprite in ((chosen, scaled), (native, exact)):
        alpha = sprite.rgba[..., 3].astype(float)
        ys, xs = np.indices(alpha.shape)
        centroid = np.array([(alpha * xs).sum(), (alpha * ys).sum()]) / alpha.sum()
        source = image.rgba[..., 3].astype(float)
        sy, sx = np.indices(source.shape)
        source_centroid = np.array([(source * sx).sum(), (source * sy).sum()]) / source.sum()
        factor = sprite.rgba.shape[1] / image.rgba.shape[1]
        expected = (np.array(image.hotspot) - source_centroid) * factor
        np.testing.assert_allclose(np.array(sprite.hotspot) - centroid, expected, atol=0.1)

    larger = render_sprite(CursorStyle("hand", theme, native.nominal_size * 2))
    assert larger.rgba.shape[0] == 2 * native.rgba.shape[0]  # beyond the largest: that one, scaled up
    np.testing.assert_allclose(larger.hotspot, np.array(native.hotspot) * 2 + 0.5)


@pytest.mark.parametrize(
    ("shape", "theme"),
    [("arrow", "light"), ("hand", "red"), ("dot", "laser-green"), ("arrow", "x11"), ("crosshair", "x11")],
)
def test_shadows_keep_the_hotspot_and_fall_below_right(shape, theme):
    if theme == "x11":
        theme = installed("DMZ-Black", "Bibata-Original-Classic", "Adwaita")
    plain = render_sprite(CursorStyle(shape, theme, 40))
    shadowed = render_sprite(CursorStyle(shape, theme, 40, shadow=True))
    assert shadowed.hotspot == plain.hotspot
    h, w = plain.rgba.shape[:2]
    assert shadowed.rgba.shape[0] > h and shadowed.rgba.shape[1] > w
    assert (shadowed.rgba[:h, :w, 3].astype(int) >= plain.rgba[..., 3].astype(int) - 3).all()
    grown = shadowed.rgba[h:, :, 3].sum() + shadowed.rgba[:, w:, 3].sum()
    assert grown > 0 and shadowed.rgba[h:, :, :3].max() < 80  # dark, below and to the right


def test_sizes_scale_every_kind_of_sprite():
    themes = ["light", "laser-red"] + [t for t in ("Adwaita", "oxy-white") if t in installed_themes()]
    for theme in themes:
        shape = "dot" if theme in LASER_THEMES else "arrow"
        small, large = (
            render_sprite(CursorStyle(shape, theme, 16)),
            render_sprite(CursorStyle(shape, theme, 64)),
        )
        assert 3.2 < large.rgba.shape[0] / small.rgba.shape[0] < 4.8, theme
        for sprite in (small, large):
            h, w = sprite.rgba.shape[:2]
            # pixel (0, 0) spans -0.5..0.5: a scaled-down hotspot on the top row may sit above its centre
            assert -0.5 <= sprite.hotspot[0] < w - 0.5 and -0.5 <= sprite.hotspot[1] < h - 0.5, theme


def test_pasting_clips_at_the_frame_edges_at_any_fraction():
    sprite = render_sprite(CursorStyle("arrow", "light", 30))
    frame = np.zeros((50, 50, 3), np.uint8)
    paste_sprite(frame, sprite, 45.6, 40.2)  # mostly off the bottom right
    paste_sprite(frame, sprite, -3.3, -8.9)  # the tip off the top left
    paste_sprite(frame, sprite, -500.5, 20.5)  # off the frame: nothing drawn, no error
    assert frame[40:, 45:].any() and frame[:15, :10].any() and not frame[20:35, 15:40].any()
    coverage = sprite_coverage(sprite, 45.6, 40.2, (50, 50))
    assert coverage.shape == (50, 50) and 0 < coverage.max() <= 1 and not coverage[:40].any()


def test_themes_are_listed_with_their_shapes_and_wrong_ones_are_named():
    themes = pointer_themes()
    assert all(themes[theme] == CURSOR_SHAPES for theme in CURSOR_THEMES)
    assert all(themes[theme] == ("dot",) for theme in LASER_THEMES)
    assert set(installed_themes()) <= set(themes)
    assert theme_family("light") == "drawn" and theme_family("laser-red") == "laser"
    with pytest.raises(ValueError, match=r"'DMZ-Purple'.*apt-get install dmz-cursor-theme"):
        CursorStyle("arrow", "DMZ-Purple", 24)
    with pytest.raises(ValueError, match="'Nonesuch'"):
        CursorStyle("arrow", "Nonesuch", 24)
    with pytest.raises(ValueError, match="'laser-red' has no 'arrow'"):
        CursorStyle("arrow", "laser-red", 24)
    with pytest.raises(ValueError, match="'light' has no 'dot'"):
        CursorStyle("dot", "light", 24)
    with pytest.raises(ValueError, match="200 px"):
        CursorStyle("arrow", "light", 200)


def test_a_blinking_pointer_stays_put_and_alternates_visibility():
    track = CursorTrack(90, 30, (640, 360), np.random.default_rng(0))
    track.move_to((300, 200))
    start = int(np.ceil(track.t * 30 - 1e-9))
    track.blink_until(track.t + 2.0, period_s=0.4)
    frames = np.arange(start, min(90, start + 60))
    visible = track.visible[frames]
    assert (track.x[frames] == 300).all() and (track.y[frames] == 200).all()
    assert visible[:5].all() and not visible[6:11].any() and visible[12:17].all()
    assert 0.4 < visible.mean() < 0.6
    with pytest.raises(ValueError, match="period"):
        track.blink_until(5, period_s=0)


def test_an_idle_pointer_hides_after_the_idle_time_and_shows_on_the_next_move():
    fps = 30
    track = CursorTrack(8 * fps, fps, (640, 360), np.random.default_rng(1))
    track.move_to((200, 150))
    arrived = track.t
    track.hold_until(arrived + 3.0)
    moved = track.t
    track.move_to((400, 250))
    track.hold_until(8.0)
    before = track.visible.copy()

    track.hide_when_idle(1.0)

    t = np.arange(8 * fps) / fps
    still = (t >= arrived + 1.1) & (t < moved)
    assert before[still].all() and not track.visible[still].any()
    assert track.visible[(t > arrived + 0.1) & (t < arrived + 0.9)].all()  # not idle long enough yet
    assert track.visible[(t > moved + 0.05) & (t < moved + 0.9)].all()  # the next move shows it
    assert not track.visible[t > track.t + 1.1].any()  # and it hides again once that move ends
    assert not (track.visible & ~before).any()  # never shows a pointer that was not there


@pytest.fixture(scope="module")
def picture_for():
    pictures = [shrink_picture(image.load()) for image in packaged_images()[:2]]
    return lambda j: pictures[j % len(pictures)]


def test_random_styles_come_only_from_the_given_themes():
    given = ["dark", "blue", "laser-green"] + [t for t in ("Adwaita", "oxy-white") if t in installed_themes()]
    rng = np.random.default_rng(4)
    styles = [random_cursor_style(rng, given) for _ in range(600)]
    assert {style.theme for style in styles} == set(given)
    lasers = [style for style in styles if style.theme == "laser-green"]
    assert 0.04 < len(lasers) / len(styles) < 0.16 and {style.shape for style in lasers} == {"dot"}
    assert {style.shape for style in styles if style.theme == "dark"} == set(CURSOR_SHAPES)
    sizes = np.array([style.size for style in styles])
    assert SPRITE_HEIGHTS[0] <= sizes.min() and sizes.max() <= SPRITE_HEIGHTS[1]
    assert 22 < np.median(sizes) < 32  # log-uniform: the geometric mean of 11 and 64 is 26.5
    assert 0.3 < np.mean([style.shadow for style in styles]) < 0.5
    with pytest.raises(ValueError, match="at least one"):
        random_cursor_style(rng, [])


def test_crops_label_the_sprites_own_hotspot_on_its_opaque_pixels(picture_for):
    themes = ["light", "red", "laser-red"] + [t for t in ("Adwaita", "DMZ-White") if t in installed_themes()]
    crops = [
        crop for crop in cursor_crops(160, seed=11, picture_for=picture_for, themes=themes) if crop.style
    ]
    assert {crop.style.theme for crop in crops} <= set(themes)
    assert any(crop.style.shape == "dot" for crop in crops)
    assert any(crop.hotspot[0] % 1 != 0 for crop in crops)  # float positions, not whole pixels
    for crop in crops:
        hx, hy = crop.hotspot
        opaque = sprite_coverage(render_sprite(crop.style), hx, hy, (CROP_PX, CROP_PX)) >= 0.25
        ys, xs = np.nonzero(opaque)
        x0, y0, x1, y1 = crop.box
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
        if crop.style.shape in ("arrow", "hand"):  # the tip: on or next to the opaque pixels
            assert np.hypot(xs - hx, ys - hy).min() <= 1.5, crop.style
        elif crop.style.shape == "dot":
            assert opaque[round(hy), round(hx)], crop.style
        elif x0 < hx < x1 - 1 and y0 < hy < y1 - 1:  # crosshair, I-beam: in the middle of the shape
            assert xs.min() < hx < xs.max() and ys.min() < hy < ys.max(), crop.style
    with pytest.raises(ValueError, match="'Nonesuch'"):
        next(cursor_crops(8, seed=1, picture_for=picture_for, themes=["light", "Nonesuch"]))
