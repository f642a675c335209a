"""Real medical images for the demo lectures: those shipped inside pip packages, or a folder of your own.

Nothing here downloads: the files are read through mednarratives_assets/packaged_images.py. The
benchmark set `packaged_images` (stages/packaged_eval_images.py) leaves out every image listed
here, since the lectures show them and GenMedCLIP may train on them.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mednarratives_assets.packaged_images import (
    as_rgb,
    dicom_rgb,
    package_file,
    pydicom_file,
    skimage_rgb,
)

MODALITY_ALIASES = {"MR": "MRI", "CR": "X-ray", "DX": "X-ray", "US": "ultrasound", "XR": "X-ray"}


@dataclass(frozen=True)
class MedicalImage:
    image_id: str
    source: str  # where the pixels come from: package and file, or the folder's file
    modality: str  # one of the dataset's domains: CT, MRI, X-ray, ultrasound, histopathology, ...
    region: str  # body region, in words
    caption: str  # what the lecturer says about it
    path: Path
    loader: str  # "dicom", "skimage" or "picture"
    window: tuple[float, float] | None = None  # DICOM window centre and width, else 0.5-99.5 percentiles
    flip_vertical: bool = False
    frame: int | None = None

    def load(self) -> np.ndarray:
        """The image as RGB uint8 (H, W, 3)."""
        if self.loader == "dicom":
            pixels = dicom_rgb(self.path, self.window, self.frame)
        elif self.loader == "skimage":
            pixels = skimage_rgb(self.path.name)
        else:
            with Image.open(self.path) as picture:
                pixels = as_rgb(np.asarray(picture.convert("RGB")))
        if self.flip_vertical:
            pixels = pixels[::-1]
        return np.ascontiguousarray(pixels)


# (image_id, locate, loader, options, modality, region, caption)
_PACKAGED = [
    (
        "ct_head",
        ("pydicom", "J2K_pixelrep_mismatch.dcm"),
        "dicom",
        {"window": (40, 100)},
        "CT",
        "head",
        "An axial non contrast CT of the head at the skull base, showing the cerebellum, the temporal lobes "
        "and the air filled sinuses.",
    ),
    (
        "ct_abdomen",
        ("pydicom", "explicit_VR-UN.dcm"),
        "dicom",
        {"window": (40, 400), "flip_vertical": True},
        "CT",
        "abdomen",
        "A contrast enhanced axial CT of the upper abdomen at the level of the kidneys, showing the liver, "
        "the pancreas, the spleen and the aorta.",
    ),
    (
        "mri_liver",
        ("pydicom", "MR-SIEMENS-DICOM-WithOverlays.dcm"),
        "dicom",
        {},
        "MRI",
        "abdomen",
        "An axial contrast enhanced MRI of the upper abdomen with a large rounded lesion in the liver.",
    ),
    (
        "mri_shoulder",
        ("pydicom", "MR2_UNCR.dcm"),
        "dicom",
        {},
        "MRI",
        "shoulder",
        "An oblique coronal T1 weighted MRI of the shoulder, with the humeral head sitting in the glenoid "
        "under the deltoid muscle.",
    ),
    (
        "xray_chest",
        ("pydicom", "RG1_UNCR.dcm"),
        "dicom",
        {},
        "X-ray",
        "chest",
        "A frontal chest radiograph with many rounded nodules scattered through both lungs.",
    ),
    (
        "xray_tibia",
        ("pydicom", "RG3_UNCR.dcm"),
        "dicom",
        {},
        "X-ray",
        "lower leg",
        "A radiograph of the lower leg with a well defined lucent lesion in the distal tibia, a non "
        "ossifying fibroma.",
    ),
    (
        "us_lymph_node",
        ("pydicom", "US1_UNCR.dcm"),
        "dicom",
        {},
        "ultrasound",
        "neck",
        "A power Doppler ultrasound of an enlarged lymph node, where the colour shows blood flow inside it.",
    ),
    (
        "us_pelvis",
        ("pydicom", "gdcm-US-ALOKA-16.dcm"),
        "dicom",
        {},
        "ultrasound",
        "pelvis",
        "Two pelvic ultrasound views showing the fluid filled urinary bladder, with the pelvic organs "
        "behind it.",
    ),
    (
        "us_echo",
        ("pydicom", "color3d_jpeg_baseline.dcm"),
        "dicom",
        {},
        "ultrasound",
        "heart",
        "A frame from an echocardiogram showing the heart chambers inside the ultrasound sector.",
    ),
    (
        "nm_bone_scan",
        ("pydicom", "JPEG2000_UNC.dcm"),
        "dicom",
        {"window": None},
        "other",
        "whole body",
        "A whole body bone scan in which the tracer outlines the skeleton and collects in the bladder.",
    ),
    (
        "fundus",
        ("skimage", "retina"),
        "skimage",
        {},
        "ophthalmology",
        "retina",
        "A colour fundus photograph of the retina showing the optic disc, the retinal vessels and the "
        "macula.",
    ),
    (
        "histo_ihc",
        ("skimage", "immunohistochemistry"),
        "skimage",
        {},
        "histopathology",
        "colon",
        "An immunohistochemistry slide of colonic glands, with brown staining of the target protein against "
        "a blue counterstain.",
    ),
    (
        "histo_he",
        ("stardist", "data/images/histo.jpg"),
        "picture",
        {},
        "histopathology",
        "tissue",
        "An H and E stained tissue section densely packed with purple cell nuclei.",
    ),
]


def packaged_images() -> list[MedicalImage]:
    """The real medical images that the installed pip packages ship (those not installed are skipped)."""
    images = []
    for image_id, (package, name), loader, options, modality, region, caption in _PACKAGED:
        if loader == "skimage":
            path = Path("skimage.data") / name if importlib.util.find_spec("skimage") else None
            source = f"scikit-image: skimage.data.{name}()"
        elif package == "pydicom":
            path = pydicom_file(name)
            source = f"pydicom / pydicom-data test file {name}"
        else:
            path = package_file(package, name)
            source = f"{package}: {name}"
        if path is None:
            continue
        images.append(
            MedicalImage(
                image_id=image_id,
                source=source,
                modality=modality,
                region=region,
                caption=caption,
                path=Path(path),
                loader=loader,
                **options,
            )
        )
    return images


def _region_words(record: dict) -> str:
    """The body region as a lecturer names it ("the thorax"), from the fields a metadata record may have."""
    region = record.get("region") or record.get("location_category") or record.get("location") or "body"
    return str(region).split(",")[0].strip().lower()


def folder_images(folder: Path, splits: tuple[str, ...] = ("train",)) -> list[MedicalImage]:
    """Images listed in `<folder>/metadata.jsonl`, one JSON object a line.

    Each needs `image` (a path relative to the folder) and `caption`; `modality`, the body region
    (`region`, else MedPix's `location_category`, else `location`) and `split` are used when
    present. Records of other splits are left out, so that a held-out split (such as MedPix's dev
    split) never appears in the lectures.
    """
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file():
        raise FileNotFoundError(
            f"{folder}: no metadata.jsonl (one JSON object a line, with image and caption)"
        )
    images = []
    for line_number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            relative, caption = record["image"], str(record["caption"]).strip()
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"{metadata}, line {line_number}: needs a JSON object with image and caption ({error})"
            ) from error
        if record.get("split", splits[0] if splits else None) not in splits or len(caption.split()) < 3:
            continue
        path = folder / relative
        if not path.is_file():
            continue
        modality = str(record.get("modality") or "other")
        images.append(
            MedicalImage(
                image_id=Path(relative).stem,
                source=f"{folder.name}/{relative}",
                modality=MODALITY_ALIASES.get(modality, modality),
                region=_region_words(record),
                caption=caption,
                path=path,
                loader="picture",
            )
        )
    if not images:
        raise ValueError(
            f"{metadata}: no usable records (an existing image, a caption of 3+ words, split in {splits})"
        )
    return images
