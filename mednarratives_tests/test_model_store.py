"""The model store: trained models by the name of the asset that trains them, and one clear error."""

import json

import dagster as dg
import pytest

from mednarratives_assets.defs.resources import SAVED_MODELS, ModelStore


@pytest.fixture
def models(resources) -> ModelStore:
    return resources["models"]


def test_every_model_lives_under_the_data_root(models, layout):
    for name in SAVED_MODELS:
        assert models.path(name).is_relative_to(layout.models_dir)
    assert models.path("frame_classifier") == layout.frame_classifier_path
    with pytest.raises(KeyError, match="no model named 'nope'"):
        models.path("nope")


def test_a_missing_model_says_which_asset_to_materialize_first(models):
    folder = models.path("genmedclip_model")  # no default ships for it
    assert models.problem("genmedclip_model") == f"no trained model in {folder}"
    with pytest.raises(
        dg.Failure, match=r"^benchmark_scores needs genmedclip_model: .*; materialize genmedclip_model first$"
    ):
        models.load("genmedclip_model", "benchmark_scores")
    with pytest.raises(dg.Failure, match="needs the model: .*; materialize genmedclip_model first, or else"):
        models.load("genmedclip_model", "benchmark_scores", purpose="the model", alternative=", or else")


def test_an_unusable_model_says_to_materialize_it_again(models):
    path = models.path("frame_classifier")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    assert "not a readable frame classifier file" in models.problem("frame_classifier")
    unusable = (
        r"(?s)^stable_chunks cannot use the saved frame_classifier .*; materialize frame_classifier again$"
    )
    with pytest.raises(dg.Failure, match=unusable):
        models.load("frame_classifier", "stable_chunks")


def test_a_saved_clip_model_opens_with_its_training_record(models):
    folder = models.path("genmedclip_model")
    folder.mkdir(parents=True)
    (folder / "training.json").write_text(json.dumps({"held_out_pair_ids": ["p1"]}))
    assert models.problem("genmedclip_model") is None
    saved = models.load("genmedclip_model", "benchmark_scores")
    assert saved.folder == folder and saved.training == {"held_out_pair_ids": ["p1"]}
