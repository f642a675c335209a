import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import torch
import torch.nn.functional as F

from mednarratives_assets.defs.benchmark_scores import benchmark_scores
from mednarratives_assets.defs.genmedclip_model import genmedclip_model, genmedclip_no_dense_model
from mednarratives_assets.settings import REPO_ROOT
from mednarratives_assets.stages.benchmark_scores import (
    BENCHMARK_SCHEMA,
    EvalSet,
    held_out_pairs_set,
    medpix_dev_set,
    recall_at_k,
    score_model,
    scores_png,
)
from mednarratives_assets.stages.genmedclip_model import pair_text
from mednarratives_tests.clip_fixtures import synthetic_pairs
from mednarratives_tests.conftest import step_failure
from mednarratives_tests.test_dataset_export import ASSETS, model_answered, rules_curation

MEDPIX = REPO_ROOT.parent / "shared" / "datasets" / "medpix"
CLIP_ASSETS = [genmedclip_model, genmedclip_no_dense_model, benchmark_scores]


def test_recall_at_k_counts_a_hit_among_the_top_k_relevant_items():
    similarity = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.1, 0.5], [0.0, 0.2, 0.1]])
    relevant = torch.eye(3, dtype=torch.bool)
    # Query 0 ranks its item first, query 1 third, query 2 second.
    assert recall_at_k(similarity, relevant, (1, 2, 3)) == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1.0})
    # A repeated caption: query 1's text equals query 0's, so item 0 is relevant to it too.
    relevant[1, 0] = True
    assert recall_at_k(similarity, relevant, (1,))[1] == pytest.approx(2 / 3)


class KeywordEncoder:
    """An encoder whose embeddings are keyword indicators: an image "shows" its file's stem."""

    WORDS = ("CT", "histopathology", "head", "chest")

    def _embed(self, texts):
        rows = [[float(word.lower() in text.lower()) for word in self.WORDS] + [0.1] for text in texts]
        return F.normalize(torch.tensor(rows), dim=-1)

    def images(self, paths):
        return self._embed([Path(p).stem.replace("_", " ") for p in paths])

    def texts(self, texts):
        return self._embed(texts)


def test_scores_hold_overall_and_per_domain_rows_with_counts():
    eval_set = EvalSet(
        benchmark="toy",
        image_paths=[Path("CT_head.png"), Path("CT_chest.png"), Path("histopathology_x.png")],
        texts=["a CT of the head", "a CT of the chest", "histopathology"],
        domains=["CT", "CT", "histopathology"],
        labels={"zero_shot_domain": ["CT", "CT", None]},
        classes={"zero_shot_domain": {"CT": ("CT",), "histopathology": ("histopathology",)}},
    )
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    scores = score_model("toy-model", KeywordEncoder(), eval_set, stamp)
    assert scores.schema == pl.Schema(BENCHMARK_SCHEMA)
    rows = {(r["task"], r["domain"], r["metric"]): (r["value"], r["n"]) for r in scores.iter_rows(named=True)}
    assert rows[("zero_shot_domain", "all", "accuracy")] == (1.0, 2)  # the unlabelled image is left out
    assert rows[("zero_shot_domain", "CT", "accuracy")] == (1.0, 2)
    assert ("zero_shot_domain", "histopathology", "accuracy") not in rows
    assert rows[("image_to_text", "all", "R@1")] == (1.0, 3)
    assert rows[("text_to_image", "all", "R@10")] == (1.0, 3)
    assert set(scores["model_id"]) == {"toy-model"} and set(scores["created_at"]) == {stamp}
    assert scores_png(scores).startswith(b"\x89PNG") and scores_png(scores.clear()) is None


def fake_medpix(folder: Path, source_png: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    records = []
    for index, (modality, region) in enumerate([("CT", "Head"), ("MR", "Thorax"), ("MR", "Abdomen")]):
        shutil.copy(source_png, folder / "images" / f"{index}.png")
        records.append(
            {
                "image": f"images/{index}.png",
                "split": "dev",
                "modality": modality,
                "location_category": region,
                "caption": f"case {index} caption",
            }
        )
    records.append({**records[0], "split": "train"})
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    return folder


def test_the_medpix_dev_split_gives_modality_and_body_region_labels(tmp_path):
    assert medpix_dev_set(tmp_path / "absent") is None
    pairs, _ = synthetic_pairs(tmp_path, n=1)
    dev = medpix_dev_set(fake_medpix(tmp_path / "medpix", tmp_path / pairs["image_path"][0]))
    assert dev.labels == {
        "zero_shot_modality": ["CT", "MRI", "MRI"],
        "zero_shot_body_region": ["Head", "Thorax", "Abdomen"],
    }
    assert dev.domains == ["CT", "MRI", "MRI"] and len(dev.image_paths) == 3


@pytest.mark.skipif(not (MEDPIX / "metadata.jsonl").is_file(), reason="no MedPix beside the checkout")
def test_the_real_medpix_dev_split():
    dev = medpix_dev_set(MEDPIX)
    assert len(dev.image_paths) == 197
    assert dev.labels["zero_shot_modality"].count("CT") == 84
    assert None not in dev.labels["zero_shot_body_region"]


def test_held_out_pairs_are_scored_with_their_curated_texts(tmp_path):
    pairs, _ = synthetic_pairs(tmp_path, n=8)
    held_out = sorted(pairs["pair_id"][:4])
    curated = model_answered(rules_curation(pairs), held_out[0], medical_text="Bright rounded focus on CT.")
    scored = held_out_pairs_set(tmp_path, pairs, curated, held_out)
    own_texts = dict(pairs.with_columns(pair_text()).select("pair_id", "text").iter_rows())
    assert scored.texts == ["Bright rounded focus on CT.", *(own_texts[pair_id] for pair_id in held_out[1:])]

    # Only the held-out pairs need curated texts; one without fails, named.
    def without(pair_id):
        return curated.filter(pl.col("pair_id") != pair_id)

    assert held_out_pairs_set(tmp_path, pairs, without(pairs["pair_id"][-1]), held_out).texts == scored.texts
    with pytest.raises(ValueError) as raised:
        held_out_pairs_set(tmp_path, pairs, without(held_out[1]), held_out)
    assert str(raised.value) == (
        f"curated_text has no row for 1 pair(s) of channel 'ch' ({held_out[1]}): it is older than "
        "aligned_pairs there. Materialize curated_text for channel(s) ch, then score again"
    )


def seed_pairs(layout, channels: dict[str, int]) -> None:
    layout.data_root.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(layout.duckdb_path)) as con:
        for seed, (channel, n) in enumerate(channels.items()):
            pairs, boxes = synthetic_pairs(layout.data_root, n=n, channel=channel, seed=seed)
            for name, frame in (
                ("aligned_pairs", pairs),
                ("curated_text", rules_curation(pairs)),
                ("boxes", boxes),
            ):
                con.register("frame", frame.to_arrow())
                exists = con.sql(
                    f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{name}'"
                ).fetchone()[0]
                con.execute(
                    f"INSERT INTO {name} BY NAME SELECT * FROM frame"
                    if exists
                    else f"CREATE TABLE {name} AS SELECT * FROM frame"
                )
                con.unregister("frame")


def test_the_genmedclip_group_trains_both_models_and_scores_them_with_the_untrained_one(
    layout, resources, instance, tmp_path
):
    seed_pairs(layout, {"ch": 24, "other": 16})
    instance.add_dynamic_partitions("channel", ["ch", "other"])
    medpix = fake_medpix(
        tmp_path / "medpix",
        layout.data_root
        / "pairs"
        / "ch"
        / next(p.name for p in (layout.data_root / "pairs" / "ch").iterdir()),
    )
    quick = {"epochs": 2, "batch_size": 8, "held_out_fraction": 0.3}
    run_config = {
        "ops": {
            "genmedclip_model": {"config": quick},
            "genmedclip_no_dense_model": {"config": quick},
            "benchmark_scores": {"config": {"medpix_dir": str(medpix)}},
        }
    }
    missing = dg.materialize(
        ASSETS + CLIP_ASSETS,
        selection=[benchmark_scores],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    error = step_failure(missing)
    assert "benchmark_scores needs genmedclip_model: no trained model in" in error

    result = dg.materialize(
        ASSETS + CLIP_ASSETS,
        selection=CLIP_ASSETS,
        resources=resources,
        instance=instance,
        run_config=run_config,
    )
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "held_out_never_trained_on" and check.passed
    [scored] = result.asset_materializations_for_node("benchmark_scores")
    assert "data:image/png;base64," in scored.metadata["scores_chart"].value
    assert "| untrained |" in scored.metadata["scores"].value
    [trained] = result.asset_materializations_for_node("genmedclip_model")
    assert trained.metadata["n_train_pairs"].value + trained.metadata["n_held_out_pairs"].value == 40
    assert "data:image/png;base64," in trained.metadata["training_curve"].value
    folder = layout.genmedclip_dir / "genmedclip_model"
    held_out = json.loads((folder / "training.json").read_text())["held_out_pair_ids"]
    baseline = json.loads((layout.genmedclip_dir / "genmedclip_no_dense_model" / "training.json").read_text())
    assert baseline["held_out_pair_ids"] == held_out and baseline["settings"]["dense_loss"] is False
    assert all(point["dense_loss"] is None for point in baseline["curve"])
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        scores = con.sql("FROM benchmark_scores").pl()
    assert scores.columns == list(BENCHMARK_SCHEMA)
    assert set(scores["model_id"]) == {
        "genmedclip_model",
        "genmedclip_no_dense_model",
        "genmedclip_untrained",
    }
    assert set(scores["benchmark"]) == {"held_out_pairs", "medpix_dev", "packaged_images"}
    assert set(scores["task"]) == {
        "zero_shot_domain",
        "zero_shot_modality",
        "zero_shot_body_region",
        "image_to_text",
        "text_to_image",
    }
    retrieval = scores.filter(pl.col("benchmark") == "held_out_pairs", pl.col("task") == "image_to_text")
    assert set(retrieval["metric"]) == {"R@1", "R@5", "R@10"} and set(retrieval["n"]) == {len(held_out)}
    assert scores["value"].is_between(0, 1).all()

    # Without MedPix the images that pip packages ship still give every model the zero-shot tasks.
    no_medpix = dg.materialize(
        ASSETS + CLIP_ASSETS,
        selection=[benchmark_scores],
        resources=resources,
        instance=instance,
        run_config={"ops": {"benchmark_scores": {"config": {"medpix_dir": str(tmp_path / "absent")}}}},
    )
    [scored] = no_medpix.asset_materializations_for_node("benchmark_scores")
    n_packaged = scored.metadata["n_packaged_images"].value
    assert n_packaged >= 12
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        scores = con.sql("FROM benchmark_scores").pl()
    assert set(scores["benchmark"]) == {"held_out_pairs", "packaged_images"}
    zero_shot = scores.filter(
        pl.col("benchmark") == "packaged_images", pl.col("domain") == "all", pl.col("metric") == "accuracy"
    )
    assert sorted(zero_shot.select("model_id", "task").rows()) == [
        (model, task)
        for model in ("genmedclip_model", "genmedclip_no_dense_model", "genmedclip_untrained")
        for task in ("zero_shot_body_region", "zero_shot_modality")
    ]
    assert set(zero_shot.filter(pl.col("task") == "zero_shot_modality")["n"]) == {n_packaged}
    modalities = scores.filter(
        pl.col("benchmark") == "packaged_images", pl.col("task") == "zero_shot_modality"
    )
    assert {"CT", "MRI", "ultrasound", "histopathology"} <= set(modalities["domain"])

    bad = dg.materialize(
        ASSETS + CLIP_ASSETS,
        selection=[genmedclip_model],
        resources=resources,
        instance=instance,
        run_config={"ops": {"genmedclip_model": {"config": {"model_size": "huge"}}}},
        raise_on_error=False,
    )
    error = step_failure(bad)
    assert "genmedclip_model config: model_size must be one of tiny, ViT-B-16, got 'huge'" in error
    assert json.loads((folder / "training.json").read_text())["held_out_pair_ids"] == held_out  # kept

    # curated_text older than a channel's pairs fails the training, named; the model in place stays.
    with duckdb.connect(str(layout.duckdb_path)) as con:
        con.execute("DELETE FROM curated_text WHERE channel = 'other'")
    stale = dg.materialize(
        ASSETS + CLIP_ASSETS,
        selection=[genmedclip_model],
        resources=resources,
        instance=instance,
        run_config={"ops": {"genmedclip_model": {"config": quick}}},
        raise_on_error=False,
    )
    error = step_failure(stale)
    assert "genmedclip_model: curated_text has no row for 16 pair(s) of channel 'other' (" in error
    assert "Materialize curated_text for channel(s) other, then train again" in error
    assert json.loads((folder / "training.json").read_text())["held_out_pair_ids"] == held_out


def test_too_few_pairs_fail_a_run_asked_for_and_skip_the_automations_run(layout, resources, instance):
    seed_pairs(layout, {"ch": 3})
    instance.add_dynamic_partitions("channel", ["ch"])
    clip_group = {"selection": CLIP_ASSETS, "resources": resources, "instance": instance}
    asked = dg.materialize(ASSETS + CLIP_ASSETS, raise_on_error=False, **clip_group)
    errors = [event.step_failure_data.error.message for event in asked.all_events if event.is_step_failure]
    assert sorted(errors) == [
        f"dagster._core.definitions.events.Failure: {model}: 3 aligned pairs, at least 8 needed to train\n"
        for model in ("genmedclip_model", "genmedclip_no_dense_model")
    ]

    automated = dg.materialize(
        ASSETS + CLIP_ASSETS, tags={"dagster/sensor_name": "automation_sensor"}, **clip_group
    )
    assert automated.success
    assert automated.get_asset_materialization_events() == []  # benchmark_scores waits for a model
    assert not (layout.genmedclip_dir / "genmedclip_model").exists()
