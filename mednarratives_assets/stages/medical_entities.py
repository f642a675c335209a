"""Stage `medical_entities`: the medical concepts each pair's medical text mentions.

By default the concepts are the terms of the project's term list (`asr/medical_terms.txt`), found
case-insensitively as whole words (a hyphenated compound is one word: "non-enhancing" holds no
"enhancing"), the longest first, no two mentions sharing a word. Given a QuickUMLS index
(`umls_index`, made from a licensed UMLS install), QuickUMLS links the text to UMLS concepts
instead: its best concept per span, with the concept's semantic types and the match's similarity.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from mednarratives_assets.asr.vocabulary import term_sections
from mednarratives_assets.stage_settings import check_settings, setting

MEDICAL_ENTITIES_SCHEMA = {
    "channel": pl.Utf8,
    "pair_id": pl.Utf8,
    "entity": pl.Utf8,
    "concept_id": pl.Utf8,
    "concept_name": pl.Utf8,
    "start_char": pl.Int32,
    "end_char": pl.Int32,
    "source": pl.Utf8,
    "categories": pl.List(pl.Utf8),
    "semantic_types": pl.List(pl.Utf8),
    "similarity": pl.Float64,
}
# A word of the text: letters and digits, with hyphens inside ("t2-weighted").
_WORD = re.compile(r"\w+(?:-\w+)*")


@dataclass(frozen=True)
class EntitySettings:
    umls_index: str = setting(
        "",
        "A QuickUMLS index folder (QuickUMLS's install from a licensed UMLS); empty links the "
        "project's term list.",
    )

    def validated(self) -> EntitySettings:
        check_settings(self, "{name}={value!r} must {rule}")
        if self.umls_index:
            if not Path(self.umls_index).is_dir():
                raise ValueError(f"umls_index={self.umls_index!r}: no such folder")
            if importlib.util.find_spec("quickumls") is None:
                raise ValueError(
                    f"umls_index={self.umls_index!r} needs the quickumls package, which is not "
                    "installed (pip install quickumls)"
                )
        return self


@dataclass(frozen=True)
class Mention:
    """One concept found in a text, at text[start_char:end_char]."""

    entity: str
    concept_id: str
    concept_name: str
    start_char: int
    end_char: int
    source: str  # term_list or umls
    categories: list[str] | None = None  # the term list's sections holding the term
    semantic_types: list[str] | None = None  # UMLS's, e.g. T047
    similarity: float | None = None  # QuickUMLS's, between the span and the concept's string


class EntityLinker(Protocol):
    def mentions(self, text: str) -> list[Mention]: ...


def normalized_term(term: str) -> str:
    return " ".join(term.lower().split())


class TermListLinker:
    """The terms of a term list, as whole words, the longest first, without overlaps."""

    def __init__(self, sections: Mapping[str, tuple[str, ...]]):
        self._terms = {tuple(normalized_term(term).split()): list(sections[term]) for term in sections}
        self._most_words = max(map(len, self._terms), default=0)

    def mentions(self, text: str) -> list[Mention]:
        words = list(_WORD.finditer(text))
        found = []  # (first word, last word) of every term's place, overlapping ones included
        for first in range(len(words)):
            for last in range(first, min(first + self._most_words, len(words))):
                if last > first and not text[words[last - 1].end() : words[last].start()].isspace():
                    break  # a term's words are apart by spaces only, not across a comma or a full stop
                if tuple(word[0].lower() for word in words[first : last + 1]) in self._terms:
                    found.append((first, last))

        def longest_first(place: tuple[int, int]) -> tuple[int, int]:
            first, last = place
            return words[first].start() - words[last].end(), first

        taken: set[int] = set()
        kept = []
        for first, last in sorted(found, key=longest_first):  # a shorter term inside a longer is part of it
            if taken.isdisjoint(range(first, last + 1)):
                taken.update(range(first, last + 1))
                kept.append((first, last))
        return [self._mention(text, words[first].start(), words[last].end()) for first, last in sorted(kept)]

    def _mention(self, text: str, start: int, end: int) -> Mention:
        term = normalized_term(text[start:end])
        categories = self._terms[tuple(term.split())]
        return Mention(text[start:end], f"term:{term}", term, start, end, "term_list", categories)


class UmlsMatcher(Protocol):
    """QuickUMLS's matcher: a list per span of text, its candidate concepts best first, each a dict
    of start, end, ngram, term, cui, similarity, semtypes and preferred."""

    def match(self, text: str, best_match: bool = True, ignore_syntax: bool = False) -> list[list[dict]]: ...


class UmlsLinker:
    """The best UMLS concept of each span a QuickUMLS matcher finds (best_match: no overlaps)."""

    def __init__(self, matcher: UmlsMatcher):
        self._matcher = matcher

    def mentions(self, text: str) -> list[Mention]:
        spans = self._matcher.match(text, best_match=True, ignore_syntax=False)
        best = [candidates[0] for candidates in spans]
        return [
            Mention(
                text[match["start"] : match["end"]],
                match["cui"],
                match["term"],
                match["start"],
                match["end"],
                "umls",
                semantic_types=sorted(match["semtypes"]),
                similarity=float(match["similarity"]),
            )
            for match in sorted(best, key=lambda match: match["start"])
        ]


def quickumls_linker(umls_index: str) -> UmlsLinker:
    from quickumls import QuickUMLS

    try:
        return UmlsLinker(QuickUMLS(umls_index))
    except (OSError, ValueError, LookupError) as exc:  # no spaCy model or NLTK stopwords, a bad index
        raise ValueError(f"umls_index={umls_index!r}: QuickUMLS cannot open it: {exc}") from exc


def entity_linker(settings: EntitySettings) -> EntityLinker:
    """QuickUMLS on the settings' index when there is one, else the project's term list."""
    return quickumls_linker(settings.umls_index) if settings.umls_index else TermListLinker(term_sections())


def link_entities(texts: pl.DataFrame, linker: EntityLinker) -> pl.DataFrame:
    """The `medical_entities` table: a row per mention in each `curated_text` row's medical text."""
    rows = [
        {"channel": row["channel"], "pair_id": row["pair_id"]} | asdict(mention)
        for row in texts.iter_rows(named=True)
        for mention in linker.mentions(row["medical_text"] or "")
    ]
    return pl.DataFrame(rows, schema=MEDICAL_ENTITIES_SCHEMA)


def mentions_per_concept(entities: pl.DataFrame) -> pl.DataFrame:
    """concept_id, concept_name and mentions of each concept, the most mentioned first, ties by
    name. A UMLS concept found as several strings is named by the first of them in order."""
    return (
        entities.group_by("concept_id")
        .agg(pl.col("concept_name").min(), mentions=pl.len())
        .sort(["mentions", "concept_name", "concept_id"], descending=[True, False, False])
    )
