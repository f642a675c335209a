"""medical_entities: the term-list linker on hand-made texts, the sections of the term list, the UMLS
linker with a stand-in for QuickUMLS's matcher, bad settings, and the asset through Dagster with the
DuckDB IO manager."""

from __future__ import annotations

import importlib.util

import dagster as dg
import duckdb
import polars as pl
import pytest

from mednarratives_assets.asr.vocabulary import term_sections
from mednarratives_assets.defs.medical_entities import medical_entities
from mednarratives_assets.stages.curated_text import CURATED_TEXT_SCHEMA
from mednarratives_assets.stages.medical_entities import (
    MEDICAL_ENTITIES_SCHEMA,
    EntitySettings,
    TermListLinker,
    UmlsLinker,
    entity_linker,
    link_entities,
    mentions_per_concept,
)
from mednarratives_tests.conftest import materialize_from_stored_parent, step_failure

TERMS = {
    "portal vein": ("anatomy",),
    "vein thrombosis": ("pathology",),
    "portal": ("anatomy",),
    "thrombosis": ("pathology",),
    "ring enhancing lesion": ("image descriptors",),
    "lesion": ("pathology",),
    "ct": ("imaging",),
    "t2-weighted": ("imaging",),
    "enhancing": ("image descriptors",),
}


def found(text: str, terms: dict = TERMS) -> list[tuple[str, str, int, int]]:
    return [(m.entity, m.concept_id, m.start_char, m.end_char) for m in TermListLinker(terms).mentions(text)]


def test_a_multi_word_term_is_one_mention_and_its_words_are_not_mentions_of_their_own():
    assert found("A ring enhancing lesion here.") == [
        ("ring enhancing lesion", "term:ring enhancing lesion", 2, 23)
    ]


def test_the_longest_term_wins_an_overlap_and_the_rest_keeps_its_own_terms():
    # "vein thrombosis" is longer than "portal vein": it wins their shared word, and "portal" is left
    assert found("portal vein thrombosis") == [
        ("portal", "term:portal", 0, 6),
        ("vein thrombosis", "term:vein thrombosis", 7, 22),
    ]
    assert found("the portal vein") == [("portal vein", "term:portal vein", 4, 15)]


def test_case_is_ignored_and_kept_in_the_entity():
    assert found("Axial CT, then T2-Weighted.") == [
        ("CT", "term:ct", 6, 8),
        ("T2-Weighted", "term:t2-weighted", 15, 26),
    ]
    [mention] = TermListLinker(TERMS).mentions("RING  Enhancing\nlesion")
    assert (mention.entity, mention.concept_name) == ("RING  Enhancing\nlesion", "ring enhancing lesion")


def test_punctuation_ends_a_word_but_a_multi_word_term_does_not_cross_it():
    assert found("(CT). portal, vein") == [("CT", "term:ct", 1, 3), ("portal", "term:portal", 6, 12)]


def test_a_term_inside_another_word_is_not_a_mention():
    assert found("an act of octopus, CTs, non-enhancing, ct2, lesional") == []


@pytest.mark.parametrize("text", ["", "   ", "the weather is nice"])
def test_a_text_without_terms_has_no_mentions(text):
    assert found(text) == []


def test_the_term_lists_sections_are_its_categories(tmp_path):
    terms_file = tmp_path / "terms.txt"
    terms_file.write_text("# A header,\n# two lines.\n\nct\n# anatomy\nliver\nportal\n\n# clinical\nportal\n")
    assert term_sections(terms_file) == {"ct": (), "liver": ("anatomy",), "portal": ("anatomy", "clinical")}
    mentions = TermListLinker(term_sections()).mentions("An aneurysm on CT.")
    assert [(m.concept_id, m.categories, m.source) for m in mentions] == [
        ("term:aneurysm", ["image descriptors", "clinical"], "term_list"),
        ("term:ct", ["imaging modalities and technique"], "term_list"),
    ]
    assert all(m.semantic_types is None and m.similarity is None for m in mentions)


def test_the_default_linker_is_the_term_list():
    linker = entity_linker(EntitySettings().validated())
    assert [m.concept_id for m in linker.mentions("A hypodense lesion of the liver")] == [
        "term:hypodense",
        "term:lesion",
        "term:liver",
    ]


class StandInMatcher:
    """QuickUMLS's `match` for one text: a list per span, its candidates best first, the spans in
    the order of their score (not of their place), as QuickUMLS gives them."""

    def __init__(self, spans: list[list[dict]]):
        self.spans = spans
        self.asked: list[tuple[str, bool, bool]] = []

    def match(self, text: str, best_match: bool = True, ignore_syntax: bool = False) -> list[list[dict]]:
        self.asked.append((text, best_match, ignore_syntax))
        return self.spans


def candidate(start: int, end: int, ngram: str, term: str, cui: str, similarity: float, types: set) -> dict:
    return {
        "start": start,
        "end": end,
        "ngram": ngram,
        "term": term,
        "cui": cui,
        "similarity": similarity,
        "semtypes": types,
        "preferred": 1,
    }


def test_the_umls_linker_takes_each_spans_best_concept_in_text_order():
    text = "Hypodense lesions of the liver."
    matcher = StandInMatcher(
        [
            [candidate(25, 30, "liver", "liver", "C0023884", 1.0, {"T023"})],
            [
                candidate(0, 17, "Hypodense lesions", "hypodense lesion", "C1000001", 0.83, {"T033", "T029"}),
                candidate(0, 17, "Hypodense lesions", "lesion", "C0221198", 0.7, {"T033"}),
            ],
        ]
    )
    texts = pl.DataFrame({"channel": ["ch1"], "pair_id": ["p0"], "medical_text": [text]})
    table = link_entities(texts, UmlsLinker(matcher))
    assert matcher.asked == [(text, True, False)]
    assert table.schema == pl.Schema(MEDICAL_ENTITIES_SCHEMA)
    assert table.drop("channel", "pair_id").rows() == [
        ("Hypodense lesions", "C1000001", "hypodense lesion", 0, 17, "umls", None, ["T029", "T033"], 0.83),
        ("liver", "C0023884", "liver", 25, 30, "umls", None, ["T023"], 1.0),
    ]


def test_mentions_are_counted_per_concept_most_first():
    texts = pl.DataFrame(
        {"channel": ["ch1"] * 3, "pair_id": ["p0", "p1", "p2"], "medical_text": ["CT lesion", "CT", None]}
    )
    table = link_entities(texts, TermListLinker(TERMS))
    assert table.select("pair_id", "entity").rows() == [("p0", "CT"), ("p0", "lesion"), ("p1", "CT")]
    assert mentions_per_concept(table).rows() == [("term:ct", "ct", 2), ("term:lesion", "lesion", 1)]


def test_a_bad_umls_index_is_named_with_its_value(tmp_path):
    with pytest.raises(ValueError, match=r"^umls_index='/no/such/index': no such folder$"):
        EntitySettings(umls_index="/no/such/index").validated()
    if importlib.util.find_spec("quickumls") is not None:
        pytest.skip("quickumls is installed here")
    with pytest.raises(ValueError, match=r"needs the quickumls package, which is not installed"):
        EntitySettings(umls_index=str(tmp_path)).validated()


def materialize_entities(
    medical_texts: list[str], layout, resources, instance, run_config=None
) -> dg.ExecuteInProcessResult:
    """Channel ch1's medical_entities, from curated_text rows of `medical_texts`."""
    rows = [
        {"channel": "ch1", "pair_id": f"p{i}", "video_id": "v1", "chunk_index": i, "medical_text": text}
        for i, text in enumerate(medical_texts)
    ]
    curated = pl.DataFrame(rows, schema={c: CURATED_TEXT_SCHEMA[c] for c in rows[0]}).with_columns(
        pl.lit(None, dtype).alias(c) for c, dtype in CURATED_TEXT_SCHEMA.items() if c not in rows[0]
    )
    return materialize_from_stored_parent(
        medical_entities, "curated_text", curated, layout, resources, instance, run_config
    )


def test_the_asset_stores_a_row_per_mention_and_counts_the_concepts(layout, resources, instance):
    result = materialize_entities(
        ["A hypodense lesion on CT.", "The CT shows it.", ""], layout, resources, instance
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("medical_entities")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert (metadata["n_mentions"], metadata["n_concepts"], metadata["n_pairs_with_entities"]) == (4, 3, 2)
    assert "| ct | term:ct | 2 |" in metadata["most_frequent_concepts"]
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        columns = {name: kind for name, kind, *_ in con.sql("DESCRIBE medical_entities").fetchall()}
        rows = con.sql(
            "SELECT pair_id, entity, concept_id, start_char, end_char, source "
            "FROM medical_entities ORDER BY pair_id, start_char"
        ).fetchall()
    assert columns["categories"] == "VARCHAR[]" and columns["similarity"] == "DOUBLE"
    assert rows == [
        ("p0", "hypodense", "term:hypodense", 2, 11, "term_list"),
        ("p0", "lesion", "term:lesion", 12, 18, "term_list"),
        ("p0", "CT", "term:ct", 22, 24, "term_list"),
        ("p1", "CT", "term:ct", 4, 6, "term_list"),
    ]


def test_the_asset_fails_naming_a_bad_umls_index(layout, resources, instance):
    run_config = {"ops": {"medical_entities": {"config": {"umls_index": "/no/such/index"}}}}
    result = materialize_entities(["A lesion."], layout, resources, instance, run_config)
    assert not result.success
    assert "medical_entities: umls_index='/no/such/index': no such folder" in step_failure(result)
