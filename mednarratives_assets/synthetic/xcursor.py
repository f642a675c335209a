"""Real X11 cursor themes: a reader for Xcursor files and the themes installed on this machine.

An Xcursor file is little-endian: a header ("Xcur", header size, version, number of entries), a
table of contents of (type, subtype, position) entries, and chunks. Image chunks (type 0xfffd0002)
carry the nominal size as subtype, then width, height, the hotspot, an animation delay and ARGB
pixels with premultiplied alpha. Themes live under /usr/share/icons/<name>/cursors, where many
files are symlinks to each other, and a theme may inherit missing cursors from others
(index.theme, "Inherits=").
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

ICONS_DIR = Path("/usr/share/icons")
_MAGIC = b"Xcur"
_IMAGE_TYPE = 0xFFFD0002
_MAX_SIDE = 0x7FFF  # the format's own limit on an image's width and height

# Our pointer shapes and the X11 cursor names that draw them, in the order desktops look them up
X11_CURSOR_NAMES = {
    "arrow": ("left_ptr", "default", "arrow"),
    "hand": ("hand2", "pointer", "hand1", "pointing_hand"),
    "crosshair": ("crosshair", "cross", "tcross"),
    "ibeam": ("xterm", "text", "ibeam"),
}

# Theme folder name patterns -> family: variants of one design (colours, sizes, handedness)
_FAMILIES = (
    (r"adwaita", "adwaita"),
    (r"bibata-", "bibata"),
    (r"breeze", "breeze"),
    (r"chameleon-", "chameleon"),
    (r"comixcursors-", "comix"),
    (r"crystal", "crystal"),
    (r"dmz-", "dmz"),
    (r"oxy-", "oxygen"),
    (r"(red|white)glass$", "glass"),
)
# The Debian package that installs each family
FAMILY_PACKAGES = {
    "adwaita": "adwaita-icon-theme",
    "bibata": "bibata-cursor-theme",
    "breeze": "breeze-cursor-theme",
    "chameleon": "chameleon-cursor-theme",
    "comix": "comixcursors-righthanded-opaque",
    "crystal": "crystalcursors",
    "dmz": "dmz-cursor-theme",
    "oxygen": "oxygencursors",
    "glass": "xcursor-themes",
    "handhelds": "xcursor-themes",
}


@dataclass(frozen=True)
class XcursorImage:
    nominal_size: int  # the size the theme drew this image for, in pixels
    rgba: np.ndarray  # (height, width, 4) uint8, straight (not premultiplied) alpha
    hotspot: tuple[int, int]  # (x, y): the pixel that points


def read_xcursor(path: Path | str) -> list[XcursorImage]:
    """The images of an Xcursor file, one per nominal size (the first frame of an animation)."""
    path = Path(path)
    data = path.read_bytes()

    def fields(offset: int, count: int, what: str) -> tuple[int, ...]:
        if offset < 0 or offset + 4 * count > len(data):
            raise ValueError(f"Xcursor file {path} is cut short: its {what} at byte {offset} is missing")
        return struct.unpack_from(f"<{count}I", data, offset)

    if data[:4] != _MAGIC:
        raise ValueError(f"{path} is not an Xcursor file: it does not start with 'Xcur'")
    header_size, _version, n_entries = fields(4, 3, "header")
    if header_size < 16 or n_entries > len(data) // 12:
        raise ValueError(f"Xcursor file {path} is corrupt: header size {header_size}, {n_entries} entries")
    images: dict[int, XcursorImage] = {}
    for entry in range(n_entries):
        chunk_type, nominal_size, position = fields(header_size + 12 * entry, 3, "table of contents")
        if chunk_type != _IMAGE_TYPE or nominal_size in images:  # comments, or later animation frames
            continue
        chunk_header, kind, subtype, _v, width, height, xhot, yhot, _delay = fields(position, 9, "image")
        if kind != _IMAGE_TYPE or subtype != nominal_size:
            raise ValueError(f"Xcursor file {path} is corrupt: entry {entry} points at byte {position}")
        if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE and xhot < width and yhot < height):
            raise ValueError(
                f"Xcursor file {path} is corrupt: a {width}x{height} image with hotspot ({xhot}, {yhot})"
            )
        start = position + chunk_header
        if start + 4 * width * height > len(data):
            raise ValueError(f"Xcursor file {path} is cut short: a {width}x{height} image is incomplete")
        argb = np.frombuffer(data, "<u4", width * height, start).reshape(height, width)
        images[nominal_size] = XcursorImage(nominal_size, _straight_rgba(argb), (xhot, yhot))
    if not images:
        raise ValueError(f"Xcursor file {path} holds no images")
    return [images[size] for size in sorted(images)]


def _straight_rgba(argb: np.ndarray) -> np.ndarray:
    """Premultiplied ARGB words -> straight RGBA bytes."""
    channels = [(argb >> shift) & 0xFF for shift in (16, 8, 0, 24)]
    rgba = np.stack(channels, axis=-1).astype(np.float32)
    alpha = rgba[..., 3:]
    rgba[..., :3] = np.where(alpha > 0, rgba[..., :3] * 255.0 / np.maximum(alpha, 1.0), 0.0)
    return np.clip(np.round(rgba), 0, 255).astype(np.uint8)


def installed_themes(icons_dir: Path = ICONS_DIR) -> dict[str, Path]:
    """Theme name -> its cursors folder, for every theme under icons_dir that draws all our shapes."""
    return dict(_installed_themes(Path(icons_dir)))


@cache
def _installed_themes(icons_dir: Path) -> tuple[tuple[str, Path], ...]:
    if not icons_dir.is_dir():
        return ()
    names = sorted(p.name for p in icons_dir.iterdir() if (p / "cursors").is_dir())
    found = []
    for name in names:
        if all(_find_cursor_file(icons_dir, name, shape) is not None for shape in X11_CURSOR_NAMES):
            found.append((name, icons_dir / name / "cursors"))
    return tuple(found)


def cursor_file(theme: str, shape: str, icons_dir: Path = ICONS_DIR) -> Path:
    """The Xcursor file that draws `shape` in `theme`, looked up through the theme's inheritance."""
    if shape not in X11_CURSOR_NAMES:
        raise ValueError(f"unknown cursor shape {shape!r}: X11 themes draw {tuple(X11_CURSOR_NAMES)}")
    found = _find_cursor_file(Path(icons_dir), theme, shape)
    if found is None:
        raise ValueError(
            f"X11 cursor theme {theme!r} has no {shape} cursor ({', '.join(X11_CURSOR_NAMES[shape])}) "
            f"under {icons_dir}: {install_hint(theme)}"
        )
    return found


def _find_cursor_file(icons_dir: Path, theme: str, shape: str) -> Path | None:
    pending, seen = [theme], set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        for cursor_name in X11_CURSOR_NAMES[shape]:
            candidate = icons_dir / name / "cursors" / cursor_name
            if candidate.is_file():  # follows symlinks; a dangling one is not a cursor
                return candidate.resolve()
        pending += _inherited(icons_dir / name / "index.theme")
    return None


def _inherited(index_theme: Path) -> list[str]:
    if not index_theme.is_file():
        return []
    for line in index_theme.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "Inherits":
            return [name.strip().strip('"') for name in value.split(",") if name.strip().strip('"')]
    return []


def theme_family(name: str) -> str:
    """The design a theme belongs to: DMZ-White and DMZ-Black are both "dmz"."""
    lowered = name.lower()
    for pattern, family in _FAMILIES:
        if re.match(pattern, lowered):
            return family
    return lowered


def install_hint(theme: str) -> str:
    package = FAMILY_PACKAGES.get(theme_family(theme))
    if package:
        return f"install it with `apt-get install {package}`"
    return "install an X11 cursor theme package that provides it (see .ci/run for the ones this project uses)"
