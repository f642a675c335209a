"""The 12 imaging domains of the MedicalNarratives paper and the words that name each one."""

from __future__ import annotations

DOMAINS = (
    "CT",
    "MRI",
    "X-ray",
    "ultrasound",
    "histopathology",
    "dermatology",
    "endoscopy",
    "ophthalmology",
    "mammography",
    "surgery",
    "dental",
    "other",
)


# Keywords per domain; the names of the modality itself count double.
DOMAIN_KEYWORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "CT": (
        ("ct", "computed tomography", "cat scan"),
        ("hypodense", "hyperdense", "attenuation", "hounsfield"),
    ),
    "MRI": (
        ("mri", "mr", "magnetic resonance"),
        ("hyperintense", "hypointense", "t1", "t2", "flair", "weighted", "diffusion", "gadolinium"),
    ),
    "X-ray": (
        ("x-ray", "xray", "radiograph", "radiography", "plain film"),
        ("radiopaque", "lucent", "lucency", "radiolucent", "frontal", "lateral view"),
    ),
    "ultrasound": (
        ("ultrasound", "sonography", "sonogram", "echocardiogram"),
        ("echogenic", "hypoechoic", "hyperechoic", "anechoic", "doppler", "transducer"),
    ),
    "histopathology": (
        ("histology", "histopathology", "histologic", "microscopy", "micrograph", "h&e"),
        ("stain", "stained", "staining", "biopsy", "nuclei", "cells", "immunohistochemistry", "eosin"),
    ),
    "dermatology": (
        ("dermatology", "dermoscopy", "dermatoscopic", "skin"),
        ("rash", "macule", "papule", "erythema", "melanoma", "nevus", "pigmented"),
    ),
    "endoscopy": (
        ("endoscopy", "endoscopic", "colonoscopy", "gastroscopy", "bronchoscopy"),
        ("mucosa", "mucosal", "polyp", "lumen"),
    ),
    "ophthalmology": (
        ("fundus", "ophthalmoscopy", "retina", "retinal", "funduscopic"),
        ("optic disc", "macula", "microaneurysms", "vessels of the eye"),
    ),
    "mammography": (("mammogram", "mammography", "mammographic"), ("breast", "calcifications", "bi-rads")),
    "surgery": (
        ("surgery", "surgical", "intraoperative", "operative", "laparoscopic"),
        ("incision", "resection", "retractor"),
    ),
    "dental": (
        ("dental", "panoramic", "periapical", "orthopantomogram"),
        ("tooth", "teeth", "molar", "caries", "root canal"),
    ),
}
