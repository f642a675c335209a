"""Settings declared once: `stage_settings.setting` fields checked by `check_settings`, and the
launchpad configs `defs.configs` builds from them."""

import math
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import pytest

from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.stage_settings import check_settings, declared_settings, setting
from mednarratives_assets.stages.aligned_pairs import PairSettings
from mednarratives_assets.stages.boxes import BoxSettings
from mednarratives_assets.stages.cursor_detector import DetectorTrainingSettings
from mednarratives_assets.stages.cursor_traces import TraceSettings
from mednarratives_assets.stages.dataset_export_all import MergedExportSettings
from mednarratives_assets.stages.frame_classifier import ClassifierTrainingSettings
from mednarratives_assets.stages.genmedclip_model import ClipTrainingSettings
from mednarratives_assets.stages.medical_entities import EntitySettings
from mednarratives_assets.stages.narratives import NarrativeSettings
from mednarratives_assets.stages.stable_chunks import ChunkingSettings
from mednarratives_assets.stages.video_filter import VideoFilterSettings
from mednarratives_tests.conftest import step_failure

STAGE_SETTINGS = [
    ChunkingSettings,
    TraceSettings,
    BoxSettings,
    NarrativeSettings,
    PairSettings,
    ClipTrainingSettings,
    ClassifierTrainingSettings,
    DetectorTrainingSettings,
    VideoFilterSettings,
    MergedExportSettings,
    EntitySettings,
]


@dataclass(frozen=True)
class Example:
    count: int = setting(3, "How many.", ge=1)
    share: float = setting(0.5, "A share.", ge=0, lt=1)
    rate: float = setting(1.0, "A rate.", gt=0)
    lead_s: float = setting(0.3, "Seconds ahead.", ge=0, le=5, unit="seconds")
    bits: int = setting(6, "pHash bits.", ge=0, le=32, unit="bits")
    size: str = setting("tiny", "The model.", choices=("tiny", "big"))
    snap: bool = setting(True, "Snap or not.")
    seed: int = setting(0, "Any seed.")

    def validated(self) -> "Example":
        return check_settings(self, "{name} must {rule}, got {value!r}")


WHOLE_RULE = [
    ({"count": 0}, "count must be an integer of at least 1, got 0"),
    ({"count": 2.5}, "count must be an integer of at least 1, got 2.5"),
    ({"count": True}, "count must be an integer of at least 1, got True"),
    ({"share": 1.0}, "share must lie in [0, 1), got 1.0"),
    ({"share": -0.1}, "share must lie in [0, 1), got -0.1"),
    ({"rate": 0.0}, "rate must be above 0, got 0.0"),
    ({"rate": math.nan}, "rate must be above 0, got nan"),
    ({"lead_s": 5.5}, "lead_s must be between 0 and 5 seconds, got 5.5"),
    ({"bits": 33}, "bits must be between 0 and 32 bits, got 33"),
    ({"size": "huge"}, "size must be one of tiny, big, got 'huge'"),
    ({"snap": 1}, "snap must be true or false, got 1"),
    ({"seed": "0"}, "seed must be an integer, got '0'"),
]


@pytest.mark.parametrize(("changes", "message"), WHOLE_RULE)
def test_a_bad_value_is_named_with_its_whole_rule(changes, message):
    with pytest.raises(ValueError) as error:
        Example(**changes).validated()
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("changes", "broken"),
    [
        ({"count": 0}, "count=0 must be at least 1"),
        ({"count": False}, "count=False must be an integer"),
        ({"share": -0.1}, "share=-0.1 must be zero or more"),
        ({"share": 1.0}, "share=1.0 must be below 1"),
        ({"rate": -1.0}, "rate=-1.0 must be positive"),
        ({"lead_s": 6.0}, "lead_s=6.0 must be at most 5 seconds"),
        ({"rate": True}, "rate=True must be a number"),
    ],
)
def test_broken_says_only_the_bound_the_value_breaks(changes, broken):
    with pytest.raises(ValueError) as error:
        check_settings(Example(**changes), "{name}={value!r} must {broken}")
    assert str(error.value) == broken


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"count": 1, "share": 0.0, "rate": 1e-9, "lead_s": 5, "bits": 32, "size": "big", "snap": False},
        {"rate": 2, "count": np.int64(4), "share": np.float32(0.25), "seed": -7},  # numpy numbers, any seed
    ],
)
def test_values_within_the_bounds_pass(changes):
    settings = Example(**changes)
    assert settings.validated() is settings


def test_every_bad_setting_is_reported():
    with pytest.raises(ValueError) as error:
        Example(count=0, size="huge").validated()
    assert str(error.value) == (
        "count must be an integer of at least 1, got 0; size must be one of tiny, big, got 'huge'"
    )


def test_a_setting_takes_one_bound_a_side_and_every_field_is_declared():
    with pytest.raises(TypeError, match="one lower bound"):
        setting(1, "Both.", ge=0, gt=0)

    @dataclass(frozen=True)
    class Undeclared:
        declared: int = setting(1, "Declared.")
        plain: int = 2

    with pytest.raises(TypeError, match="plain is not declared with setting"):
        check_settings(Undeclared(), "{name}: {rule}")

    @dataclass(frozen=True)
    class Listy:
        items: list = field(default_factory=list, metadata=setting(1, "x").metadata)

    with pytest.raises(TypeError, match="a float, int, bool or str"):
        declared_settings(Listy)


def test_the_description_is_the_doc_and_the_rule():
    described = {declared.name: declared.description for declared in declared_settings(Example)}
    assert described["lead_s"] == "Seconds ahead. Must be between 0 and 5 seconds."
    assert described["count"] == "How many. Must be an integer of at least 1."
    assert described["size"] == "The model. Must be one of tiny, big."
    assert described["seed"] == "Any seed."  # an int like any other: the launchpad shows the type


@pytest.mark.parametrize("settings_cls", STAGE_SETTINGS)
def test_every_stage_setting_is_declared_with_a_doc_and_its_default_passes(settings_cls):
    declared = declared_settings(settings_cls)
    assert all(one.doc.endswith(".") and one.description for one in declared)
    assert settings_cls().validated() == settings_cls()


def test_the_stages_keep_their_rules():
    """The bounds of the stages' old hand-written checks, one edge each side."""
    assert ChunkingSettings(duplicate_distance=0).validated()
    assert TraceSettings(sample_hz=60, jitter_px=0, min_lone_confidence=1).validated()
    assert BoxSettings(min_inside=1.0, phrase_lead_s=0.0).validated()
    assert PairSettings(duplicate_distance=32).validated()
    assert ClipTrainingSettings(held_out_fraction=0.0, batch_size=2, duplicate_distance=0).validated()
    assert ClassifierTrainingSettings(seed=0, frames_per_class=6).validated()
    assert DetectorTrainingSettings(train_crops=16, val_crops=8, batch=2, seed=-1).validated()
    for bad in (
        lambda: ChunkingSettings(medical_threshold=1.0),
        lambda: ChunkingSettings(analysis_width=0),
        lambda: TraceSettings(sample_hz=60.5),
        lambda: TraceSettings(diff_threshold=True),
        lambda: BoxSettings(min_inside=0.0),
        lambda: ClipTrainingSettings(warmup_fraction=1.0),
        lambda: ClassifierTrainingSettings(held_out_fraction=True),
        lambda: ClassifierTrainingSettings(frames_per_class=5),
        lambda: DetectorTrainingSettings(min_confidence=0.0),
    ):
        with pytest.raises(ValueError):
            bad().validated()


ExampleConfig = config_class(
    Example,
    "ExampleConfig",
    "An example.",
    exclude=("seed",),
    extra={"images_dir": setting("/nowhere", "Extra pictures, where the folder exists.")},
)


def test_the_config_has_each_setting_with_its_default_and_description():
    schema = ExampleConfig.to_config_schema().as_field().config_type.fields
    assert set(schema) == {"count", "share", "rate", "lead_s", "bits", "size", "snap", "images_dir"}
    assert schema["lead_s"].default_value == 0.3 and not schema["lead_s"].is_required
    assert schema["lead_s"].description == "Seconds ahead. Must be between 0 and 5 seconds."
    assert schema["images_dir"].description == "Extra pictures, where the folder exists."
    assert ExampleConfig.__doc__ == "An example."
    config = ExampleConfig(count=4)
    assert settings_from(config, Example, defaults={"seed": 9}) == Example(count=4, seed=9)
    assert config.images_dir == "/nowhere"


def test_the_config_builder_refuses_unknown_or_doubled_fields():
    with pytest.raises(ValueError, match="no setting nope to exclude"):
        config_class(Example, "Bad", "Bad.", exclude=("nope",))
    with pytest.raises(ValueError, match="declares count already"):
        config_class(Example, "Bad", "Bad.", extra={"count": setting(1, "Again.")})


# At module level, and no `from __future__ import annotations` here: dagster takes the asset's config
# class from the annotation itself.
NarrativesConfig = config_class(NarrativeSettings, "NarrativesConfig", "How narratives are cut.")


@dg.asset
def padded(config: NarrativesConfig) -> float:
    return settings_from(config, NarrativeSettings).padding_s


def test_the_config_drives_an_asset_and_the_stage_names_a_bad_value():
    assert padded.op.config_schema.config_type.fields["padding_s"].description == (
        "Seconds added to each side of a chunk's span when taking its words. Must be between 0 and 5 seconds."
    )
    good = dg.materialize([padded], run_config={"ops": {"padded": {"config": {"padding_s": 1}}}})
    assert good.output_for_node("padded") == 1.0
    assert dg.materialize([padded]).output_for_node("padded") == NarrativeSettings().padding_s

    bad = dg.materialize(
        [padded], run_config={"ops": {"padded": {"config": {"padding_s": -1.0}}}}, raise_on_error=False
    )
    assert not bad.success
    assert "padding_s=-1.0 must be between 0 and 5 seconds" in step_failure(bad)


def test_a_config_without_a_setting_takes_the_given_default_and_its_own_value_wins():
    Baseline = config_class(ClipTrainingSettings, "Baseline", "No dense loss.", exclude=("dense_loss",))
    Dense = config_class(ClipTrainingSettings, "Dense", "With the dense loss.")
    assert "dense_loss" not in Baseline.model_fields and "dense_loss" in Dense.model_fields
    assert not settings_from(Baseline(), ClipTrainingSettings, defaults={"dense_loss": False}).dense_loss
    assert settings_from(Dense(), ClipTrainingSettings, defaults={"dense_loss": False}).dense_loss
    with pytest.raises(ValueError, match="model_size must be one of tiny, ViT-B-16, got 'huge'"):
        settings_from(Dense(model_size="huge"), ClipTrainingSettings)
