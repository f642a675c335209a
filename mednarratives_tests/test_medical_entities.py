"""medical_entities: the term-list linker on hand-made texts, the sections of the term list, the UMLS
linker with a stand-in for QuickUMLS's matcher and, where the quickumls package is installed, with
the real QuickUMLS on an index its installer builds from a made-up UMLS subset, bad settings, and the
asset through Dagster with the DuckDB IO manager."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

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
    quickumls_linker,
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


def test_quickumls_failing_to_open_an_index_is_named_with_its_value(monkeypatch, tmp_path):
    # QuickUMLS raises OSError without its spaCy model and LookupError without NLTK's stopwords
    for error in (OSError("Model for language ENG is not downloaded"), LookupError("Resource stopwords")):

        class FailingQuickUMLS:
            def __init__(self, quickumls_fp, error=error):
                raise error

        monkeypatch.setitem(sys.modules, "quickumls", types.SimpleNamespace(QuickUMLS=FailingQuickUMLS))
        with pytest.raises(ValueError, match=rf"^umls_index='{tmp_path}': QuickUMLS cannot open it: "):
            quickumls_linker(str(tmp_path))


# A made-up UMLS subset: (CUI, strings, the first preferred, semantic types). C9000031's type,
# Anatomical Structure, is not among those QuickUMLS accepts by default; "stroke" is two concepts'
# string, preferred by C9000032 only.
SYNTHETIC_UMLS = [
    ("C9000001", ["liver"], ["T023"]),
    ("C9000002", ["kidney"], ["T023"]),
    ("C9000003", ["spleen"], ["T023"]),
    ("C9000004", ["pancreas"], ["T023"]),
    ("C9000005", ["gallbladder"], ["T023"]),
    ("C9000006", ["aorta"], ["T023"]),
    ("C9000007", ["portal vein"], ["T023"]),
    ("C9000008", ["lung"], ["T023"]),
    ("C9000009", ["brain"], ["T023"]),
    ("C9000010", ["femur"], ["T023"]),
    ("C9000011", ["hepatocellular carcinoma"], ["T191"]),
    ("C9000012", ["pneumonia"], ["T047"]),
    ("C9000013", ["pulmonary embolism"], ["T047"]),
    ("C9000014", ["aortic aneurysm", "aneurysm of aorta"], ["T047"]),
    ("C9000015", ["portal vein thrombosis"], ["T047"]),
    ("C9000016", ["cirrhosis"], ["T047"]),
    ("C9000017", ["metastasis", "metastases"], ["T191"]),
    ("C9000018", ["fracture"], ["T037"]),
    ("C9000019", ["appendicitis"], ["T047"]),
    ("C9000020", ["cholecystitis"], ["T047"]),
    ("C9000021", ["edema"], ["T046"]),
    ("C9000022", ["hemorrhage"], ["T046"]),
    ("C9000023", ["cerebrovascular accident", "stroke"], ["T047"]),
    ("C9000024", ["glioblastoma"], ["T191"]),
    ("C9000025", ["meningioma"], ["T191"]),
    ("C9000026", ["lymphoma"], ["T191"]),
    ("C9000027", ["pneumothorax"], ["T047"]),
    ("C9000028", ["pleural effusion"], ["T047"]),
    ("C9000029", ["hypodense lesion"], ["T033", "T029"]),
    ("C9000030", ["computed tomography", "ct"], ["T060"]),
    ("C9000031", ["vein"], ["T017"]),
    ("C9000032", ["stroke"], ["T184"]),
]


def write_synthetic_umls(folder: Path) -> None:
    """MRCONSO.RRF and MRSTY.RRF of SYNTHETIC_UMLS, with all the columns of UMLS's Rich Release
    Format (QuickUMLS's installer reads CUI, LAT, ISPREF and STR of the one, CUI and TUI of the other)."""
    conso, sty = [], []
    for n, (cui, strings, semantic_types) in enumerate(SYNTHETIC_UMLS):
        for k, string in enumerate(strings):
            # CUI|LAT|TS|LUI|STT|SUI|ISPREF|AUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF|
            ids = f"{n:04d}{k}"
            preferred, kind = ("Y", "PN") if k == 0 else ("N", "SY")
            conso.append(
                f"{cui}|ENG|P|L{ids}|PF|S{ids}|{preferred}|A{ids}||||MTH|{kind}|{cui}|{string}|0|N||"
            )
        for semantic_type in semantic_types:
            sty.append(f"{cui}|{semantic_type}|A0.0|{semantic_type}|AT{n:04d}||")  # CUI|TUI|STN|STY|ATUI|CVF|
    folder.mkdir()
    (folder / "MRCONSO.RRF").write_text("\n".join(conso) + "\n", encoding="utf-8")
    (folder / "MRSTY.RRF").write_text("\n".join(sty) + "\n", encoding="utf-8")


def test_the_real_quickumls_links_text_to_an_index_built_by_its_installer(tmp_path):
    """Needs the quickumls package, its spaCy model and NLTK's stopwords; skipped without them."""
    pytest.importorskip("quickumls")
    spacy = pytest.importorskip("spacy")
    nltk = pytest.importorskip("nltk")
    if not spacy.util.is_package("en_core_web_sm"):
        pytest.skip("QuickUMLS needs the spaCy model en_core_web_sm")
    try:
        nltk.data.find("corpora/stopwords")
    except LookupError:
        pytest.skip("QuickUMLS needs NLTK's stopwords corpus")
    write_synthetic_umls(tmp_path / "umls")
    index = tmp_path / "index"
    index.mkdir()  # the installer asks before it creates a folder or empties one
    install = [sys.executable, "-m", "quickumls.install", "--lowercase", tmp_path / "umls", index]
    subprocess.run(install, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)

    linker = entity_linker(EntitySettings(umls_index=str(index)).validated())
    texts = [
        "Hypodense lesions in the liver.",
        "CT shows portal vein thrombosis and an aortic aneurysm of the vein.",
        "Metastases to the brain; no pneumothorax or pleural effusions.",
        "The weather is nice.",
        None,
        "A stroke, with edema.",
    ]
    pair_ids = [f"p{i}" for i in range(len(texts))]
    table = link_entities(
        pl.DataFrame({"channel": "ch1", "pair_id": pair_ids, "medical_text": texts}), linker
    )
    assert table.schema == pl.Schema(MEDICAL_ENTITIES_SCHEMA)
    assert table["source"].unique().to_list() == ["umls"] and table["categories"].null_count() == table.height
    columns = ["pair_id", "entity", "concept_id", "concept_name", "start_char", "end_char", "semantic_types"]
    rows = table.select(*columns, pl.col("similarity").round(3)).rows()
    # capital letters match a lower-case index; a plural its singular, at a similarity below 1; a
    # synonym keeps its own string; the longest span wins ("portal vein thrombosis", not "portal
    # vein"); "CT" is shorter than QuickUMLS's 3 characters and "vein" of a type it does not accept;
    # of a string's concepts, the best candidate is the one whose preferred string it is
    assert rows == [
        ("p0", "Hypodense lesions", "C9000029", "hypodense lesion", 0, 17, ["T029", "T033"], 0.933),
        ("p0", "liver", "C9000001", "liver", 25, 30, ["T023"], 1.0),
        ("p1", "portal vein thrombosis", "C9000015", "portal vein thrombosis", 9, 31, ["T047"], 1.0),
        ("p1", "aortic aneurysm", "C9000014", "aortic aneurysm", 39, 54, ["T047"], 1.0),
        ("p2", "Metastases", "C9000017", "metastases", 0, 10, ["T191"], 1.0),
        ("p2", "brain", "C9000009", "brain", 18, 23, ["T023"], 1.0),
        ("p2", "pneumothorax", "C9000027", "pneumothorax", 28, 40, ["T047"], 1.0),
        ("p2", "pleural effusions", "C9000028", "pleural effusion", 44, 61, ["T047"], 0.933),
        ("p5", "stroke", "C9000032", "stroke", 2, 8, ["T184"], 1.0),
        ("p5", "edema", "C9000021", "edema", 15, 20, ["T046"], 1.0),
    ]
    for pair_id, entity, *_, start, end in table.select("pair_id", "entity", "start_char", "end_char").rows():
        assert texts[int(pair_id[1:])][start:end] == entity


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
