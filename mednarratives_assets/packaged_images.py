"""Reading the real medical images that pip packages ship, as RGB uint8 arrays.

pydicom finds its test files and the pydicom-data package's files locally (`download=False`);
scikit-image and stardist ship theirs inside their wheels. Nothing here downloads. The demo
lectures (synthetic/medical_images.py) and the `packaged_images` benchmark set
(stages/packaged_eval_images.py) both read through these functions.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image


def pydicom_file(name: str) -> Path | None:
    """A pydicom or pydicom-data test file by name; None when neither ships it."""
    import pydicom.data

    found = pydicom.data.get_testdata_file(name, download=False)
    return Path(found) if found else None


def package_file(package: str, relative: str) -> Path | None:
    """A file inside an installed package; None when the package or the file is absent."""
    spec = importlib.util.find_spec(package)  # no import: stardist's own import is heavy
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


def gray_uint8(values: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """Grey values to 0-255 through a (centre, width) window, else the 0.5-99.5 percentiles."""
    values = values.astype(np.float64)
    if window is not None:
        low, high = window[0] - window[1] / 2, window[0] + window[1] / 2
    else:
        low, high = np.percentile(values, (0.5, 99.5))
    return (np.clip((values - low) / max(high - low, 1e-6), 0, 1) * 255).round().astype(np.uint8)


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """Grey or RGBA uint8 as contiguous RGB (H, W, 3)."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)


def dicom_rgb(path: Path, window: tuple[float, float] | None, frame: int | None) -> np.ndarray:
    """One frame of a DICOM file (the middle one of several when `frame` is None), as RGB uint8.

    Grey images go through the modality LUT (Hounsfield units for CT) and the window; palette
    colour through its LUT. Raises pydicom's RuntimeError when no installed plugin decodes the
    file's transfer syntax (JPEG-LS and JPEG Lossless need pylibjpeg or gdcm).
    """
    import pydicom
    from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

    header = pydicom.dcmread(path, stop_before_pixels=True)
    n_frames = int(header.get("NumberOfFrames", 1) or 1)
    index = None if n_frames <= 1 else (n_frames // 2 if frame is None else frame)
    pixels = pixel_array(path, index=index)
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, header).astype(np.float64)
        return as_rgb((rgb / (255.0 if rgb.max() <= 255 else 65535.0) * 255).round())
    if pixels.ndim == 3:  # RGB, or YBR that pydicom already converted
        return as_rgb(pixels if pixels.dtype == np.uint8 else (pixels / pixels.max() * 255).round())
    gray = gray_uint8(apply_modality_lut(pixels, header), window)
    return as_rgb(255 - gray if photometric == "MONOCHROME1" else gray)


def skimage_rgb(name: str) -> np.ndarray:
    """An image of `skimage.data` (those in the wheel, such as retina or microaneurysms), as RGB."""
    import skimage.data

    return as_rgb(np.asarray(getattr(skimage.data, name)()))


def picture_rgb(path: Path) -> np.ndarray:
    """A picture file as RGB; 16-bit grey (a microscope's TIFF) is stretched between its percentiles."""
    with Image.open(path) as picture:
        if picture.mode in ("I;16", "I;16B", "I", "F"):
            return as_rgb(gray_uint8(np.asarray(picture), None))
        return as_rgb(np.asarray(picture.convert("RGB")))
