"""The images of the `packaged_images` benchmark set: real medical images that pip packages ship.

They give benchmark_scores zero-shot modality and body-region tasks where no MedPix folder is
present. The demo lectures show some images of the same packages (synthetic/medical_images.py),
so GenMedCLIP may have trained on those: this list takes other files and other frames of
multi-frame files, each 14 pHash bits or more from every image the demo shows (a test checks
that none is within 6). pydicom ships many encodings of one picture; one of each is listed, and what stays
within `duplicate_distance` bits of an image already kept is dropped. Files that are absent or that
no installed plugin decodes are skipped, with the reason logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mednarratives_assets.image_hashing import hash_distance, perceptual_hash
from mednarratives_assets.packaged_images import (
    dicom_rgb,
    package_file,
    picture_rgb,
    pydicom_file,
    skimage_rgb,
)

DUPLICATE_DISTANCE = 6  # pHash bits within which two images are one picture, as genmedclip's split says


@dataclass(frozen=True)
class PackagedSource:
    """Where one evaluation image lies and what it shows."""

    image_id: str
    package: str  # "pydicom" (its test files and pydicom-data's), "skimage", or a package shipping `name`
    name: str  # pydicom's file name, skimage.data's function, or the file's path inside the package
    modality: str  # one of domains.DOMAINS
    region: str | None  # a MedPix location category (benchmark_scores.BODY_REGION_WORDS); None: none fits
    caption: str
    frame: int | None = None  # of a multi-frame DICOM file
    window: tuple[float, float] | None = None  # DICOM window centre and width, else percentiles

    @property
    def source(self) -> str:
        frame = f", frame {self.frame}" if self.frame is not None else ""
        return f"{self.package}: {self.name}{frame}"

    def load(self) -> np.ndarray:
        """The image as RGB uint8; FileNotFoundError when the package does not ship it."""
        if self.package == "skimage":
            return skimage_rgb(self.name)
        path = pydicom_file(self.name) if self.package == "pydicom" else package_file(self.package, self.name)
        if path is None:
            raise FileNotFoundError(f"{self.package} ships no {self.name}")
        if self.package == "pydicom":
            return dicom_rgb(path, self.window, self.frame)
        return picture_rgb(path)


@dataclass(frozen=True)
class EvalImage:
    source: PackagedSource
    pixels: np.ndarray  # RGB uint8
    phash: str


_ECHO_CAPTION = (
    "An apical four chamber echocardiogram showing the four heart chambers inside the ultrasound sector."
)
_BRAIN_MRI_CAPTION = (
    "A sagittal T1 weighted MRI of the brain, zoomed on the folded cortex above the lateral ventricle."
)
# The demo shows J2K_pixelrep_mismatch, explicit_VR-UN, MR-SIEMENS-DICOM-WithOverlays (and
# examples_overlay.dcm is a crop of its pixels), MR2, RG1, RG3, US1 (and examples_jpeg2k and
# examples_rgb_color, the same picture), gdcm-US-ALOKA-16, color3d_jpeg_baseline's frame 60 (and
# examples_ybr_color, the same clip smaller), JPEG2000 (the bone scan), retina, immunohistochemistry
# and stardist's histo.jpg: none of them is here. X-ray has no other image large enough to read.
PACKAGED_SOURCES = (
    PackagedSource(
        "ct_thoracic_spine",
        "pydicom",
        "CT_small.dcm",
        "CT",
        "Spine and Muscles",
        "An axial CT through a thoracic vertebra, showing the vertebral body, the spinal canal and the back "
        "muscles, with the aorta in front of the spine.",
    ),
    PackagedSource(
        "ct_brain",
        "pydicom",
        "693_UNCR.dcm",
        "CT",
        "Head",
        "An axial non contrast CT of the brain at the level of the lateral ventricles, inside the bright "
        "ring of the skull.",
        window=(40, 100),  # the file's own brain window
    ),
    PackagedSource(
        "ct_brain_perfusion",
        "pydicom",
        "eCT_Supplemental.dcm",
        "CT",
        "Head",
        "A CT perfusion map of cerebral blood flow in an axial slice of the brain.",
        frame=0,  # its second frame is the same map within 4 bits
        window=(1074, 100),  # the brain's values; 0 outside it
    ),
    PackagedSource(
        "mri_small", "pydicom", "MR_small.dcm", "MRI", None, "A small cropped MRI slice in grey scale."
    ),
    *(
        PackagedSource(
            f"mri_brain_slice_{frame}", "pydicom", "emri_small.dcm", "MRI", "Head", _BRAIN_MRI_CAPTION, frame
        )
        for frame in (0, 3, 5, 8)  # of 10 slices, 10 bits or more apart; the others are within 8 of one
    ),
    *(
        PackagedSource(
            f"us_echo_frame_{frame}",
            "pydicom",
            "color3d_jpeg_baseline.dcm",
            "ultrasound",
            "Thorax",
            _ECHO_CAPTION,
            frame,
        )
        # The demo shows frame 60 of 120; these lie 14 bits or more from it, 8 or more from each other.
        for frame in (36, 79, 105)
    ),
    PackagedSource(
        "us_echo_aorta",
        "pydicom",
        "JPGLosslessP14SV1_1s_1f_8b.dcm",  # JPEG Lossless: decoded where pylibjpeg or gdcm is installed
        "ultrasound",
        "Thorax",
        "An adult echocardiogram with calipers measuring the diameter of the ascending aorta.",
    ),
    PackagedSource(
        "us_tee_doppler",
        "pydicom",
        "color-pl.dcm",
        "ultrasound",
        "Thorax",
        "A transoesophageal echocardiogram with colour Doppler, where red and blue show blood flowing toward "
        "and away from the probe.",
    ),
    PackagedSource(
        "us_obstetric",
        "pydicom",
        "OBXXXX1A.dcm",
        "ultrasound",
        "Reproductive and Urinary System",
        "An obstetric ultrasound screen with a distance measured between two calipers.",
    ),
    PackagedSource(
        "micro_nuclei",
        "stardist",
        "data/images/img2d.tif",
        "histopathology",
        None,
        "A fluorescence micrograph of stained cell nuclei scattered over a dark background.",
    ),
    PackagedSource(
        "micro_cell",
        "skimage",
        "cell",
        "histopathology",
        None,
        "A quantitative phase micrograph of a single round cell floating in saline.",
    ),
    PackagedSource(
        "fundus_microaneurysms",
        "skimage",
        "microaneurysms",
        "ophthalmology",
        None,
        "A grey scale detail of a fundus photograph with retinal vessels and small dark dots of "
        "microaneurysms.",
    ),
)


def packaged_eval_images(
    sources: tuple[PackagedSource, ...] = PACKAGED_SOURCES,
    duplicate_distance: int = DUPLICATE_DISTANCE,
    log: Callable[[str], None] = print,
) -> list[EvalImage]:
    """Every source that loads, less those within `duplicate_distance` pHash bits of one kept before."""
    kept: list[EvalImage] = []
    for source in sources:
        try:
            pixels = source.load()
        except (OSError, ImportError, RuntimeError, ValueError) as exc:
            reason = " ".join(str(exc).split())  # pydicom's lists the plugins it would need, a line each
            log(f"packaged_images: skipped {source.image_id} ({source.source}): {reason}")
            continue
        phash = perceptual_hash(np.ascontiguousarray(pixels[..., ::-1]))  # it hashes BGR, as OpenCV reads
        twin = next(
            (image for image in kept if hash_distance(phash, image.phash) <= duplicate_distance), None
        )
        if twin is not None:
            log(
                f"packaged_images: skipped {source.image_id}: the same picture as {twin.source.image_id} "
                f"(within {duplicate_distance} pHash bits)"
            )
            continue
        kept.append(EvalImage(source, pixels, phash))
    return kept
