"""Medical vocabulary for ASR: a prompt that primes Whisper, and a correction pass on its output.

The correction pass works on a segment's text, token by token, with three rules in order:
- `map`: a curated phrase Whisper is known to mishear (confusions.tsv), e.g. "satchel" -> "sagittal";
- `join`: words split apart that form a term when joined ("hyper intense" -> "hyperintense");
- `spelling`: a word that is neither English nor a term, within two edits of a term
  ("hypodence" -> "hypodense"), found with pyspellchecker against medical_terms.txt.
A word that is English or a term is never respelled, so ordinary narration passes untouched.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from spellchecker import SpellChecker

from mednarratives_assets.spoken_text import strip_punctuation
from mednarratives_assets.video_cache import files_fingerprint

TERMS_FILE = Path(__file__).with_name("medical_terms.txt")
CONFUSIONS_FILE = Path(__file__).with_name("confusions.tsv")
# Whisper reads the prompt as preceding speech; a short, natural one primes spellings without the
# model echoing it. Its terms come from medical_terms.txt (a test checks), chosen among those
# tiny.en most often got wrong on medical narration. On held-out MedPix narration this sentence
# did better than the same terms as a bare list or as faster-whisper hotwords (3.7% WER against
# 4.5% and 4.5%; 7.1% without).
PROMPT = (
    "A medical imaging and pathology lecture. Axial and sagittal CT, T2-weighted and FLAIR MRI, "
    "ultrasound: hypodense, hyperdense, hyperintense, hypointense, hypoechoic, lucent and "
    "contrast-enhanced lesions; histology, immunohistochemistry, hematoxylin and eosin."
)
# Bound prefixes that Whisper writes as a word of their own ("hyper intense").
PREFIXES = frozenset(
    "hyper hypo iso counter ultra hetero homo peri intra inter extra sub supra infra micro radio "
    "echo immuno histo osteo para post pre non trans endo epi retro".split()
)
_MIN_SPELLING_LENGTH = 5
# A word built on a known one ("coronally" on "coronal") is a real word, not a misspelling.
_SUFFIXES = ("ly", "s", "es", "ed", "ing", "al", "ic", "ity")
_MIN_SPELLING_SIMILARITY = 0.8


@dataclass(frozen=True)
class Correction:
    heard: str
    corrected: str
    rule: str  # map, join or spelling


def _read_lines(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def term_sections(terms_file: Path = TERMS_FILE) -> dict[str, tuple[str, ...]]:
    """Each term of the list and the sections it is listed under: a comment line right above a
    term starts a section ("anatomy"); a term listed in two sections has both."""
    sections: dict[str, tuple[str, ...]] = {}
    heading = section = None
    for line in (line.strip() for line in terms_file.read_text(encoding="utf-8").splitlines()):
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif not line:
            heading = None  # a comment block that ends in a blank line is no heading (the file's header)
        else:
            section, heading = heading or section, None
            listed = sections.get(line, ())
            sections[line] = listed if section is None or section in listed else (*listed, section)
    return sections


@lru_cache(maxsize=1)
def _english() -> SpellChecker:
    return SpellChecker()  # pyspellchecker's English word list (about 160k words)


class MedicalVocabulary:
    """The term list and confusion map; `correct` fixes one segment's text."""

    def __init__(self, terms_file: Path = TERMS_FILE, confusions_file: Path = CONFUSIONS_FILE):
        self.fingerprint = files_fingerprint([terms_file, confusions_file])
        self.terms = frozenset(_read_lines(terms_file))
        self.confusions: dict[tuple[str, ...], str] = {}
        for line in _read_lines(confusions_file):
            heard, meant, *_where = line.split("\t")
            self.confusions[tuple(heard.split())] = meant
        self._longest_confusion = max((len(k) for k in self.confusions), default=1)

    @cached_property
    def _speller(self) -> SpellChecker:
        speller = SpellChecker(language=None, distance=2)
        speller.word_frequency.load_words(self.terms)
        return speller

    def is_known(self, word: str) -> bool:
        return word in self.terms or word in _english()

    def _is_derived(self, word: str) -> bool:
        return any(word.endswith(suffix) and self.is_known(word[: -len(suffix)]) for suffix in _SUFFIXES)

    def correct(self, text: str) -> tuple[str, list[Correction]]:
        """The text with known confusions fixed, and each change; unchanged text comes back as is."""
        tokens = text.split()
        heard = [strip_punctuation(t) for t in tokens]
        cores = [h.lower() for h in heard]
        out: list[str] = []
        corrections: list[Correction] = []
        i = 0
        while i < len(tokens):
            n, fixed, rule = self._fix_at(cores, heard, i)
            if fixed is None:
                out.append(tokens[i])
            else:
                out.append(_keep_case_and_punctuation(tokens[i : i + n], fixed))
                corrections.append(Correction(" ".join(heard[i : i + n]), fixed, rule))
            i += n
        return (" ".join(out), corrections) if corrections else (text, [])

    def _fix_at(self, cores: list[str], heard: list[str], i: int) -> tuple[int, str | None, str]:
        """The number of tokens replaced at `i`, their replacement and the rule (None: no change).
        `cores` are the tokens lower-cased without punctuation, `heard` the same with their case."""
        for n in range(min(self._longest_confusion, len(cores) - i), 0, -1):
            meant = self.confusions.get(tuple(cores[i : i + n]))
            if meant is not None:
                return n, meant, "map"
        for n in (3, 2):
            parts = cores[i : i + n]
            if len(parts) < n or not all(parts):
                continue
            if parts[0] in PREFIXES or not all(self.is_known(p) for p in parts):
                for joiner in ("", "-"):
                    if joiner.join(parts) in self.terms:
                        return n, joiner.join(heard[i : i + n]), "join"
        word = cores[i]
        if (
            len(word) >= _MIN_SPELLING_LENGTH
            and word.isalpha()
            and not self.is_known(word)
            and not self._is_derived(word)
        ):
            term = self._closest_term(word)
            if term is not None:
                return 1, term, "spelling"
        return 1, None, ""

    def _closest_term(self, word: str) -> str | None:
        candidates = self._speller.candidates(word) or set()
        scored = [(difflib.SequenceMatcher(a=word, b=term).ratio(), term) for term in candidates]
        best = max(scored, default=(0.0, None))
        return best[1] if best[0] >= _MIN_SPELLING_SIMILARITY else None


def _keep_case_and_punctuation(heard: list[str], fixed: str) -> str:
    """The replacement with the heard tokens' leading and trailing punctuation, and a capital if
    the first heard word had one."""
    lead = re.match(r"^\W*", heard[0])[0]
    trail = re.search(r"\W*$", heard[-1])[0]
    core = strip_punctuation(heard[0])
    if core[:1].isupper() and fixed[:1].islower():
        fixed = fixed[0].upper() + fixed[1:]
    return f"{lead}{fixed}{trail}"
