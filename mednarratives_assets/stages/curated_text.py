"""Stage `curated_text`: each pair's caption, medical text and ROI text, from rules or a language model.

The `rules` backend takes aligned_pairs' own texts (the vocabulary's corrected caption, its
medical sentences, the pointed-at phrases). The `openai` backend asks any OpenAI-compatible chat
endpoint, the `local` backend a GGUF model on disk (the pip-shipped SmolLM2 by default), with the
versioned prompt `llm/prompts/<PROMPT_VERSION>.md`, for a JSON object of the three texts.

A model's answer is checked before it is used, and falls back to the rules texts with the reason
when it fails a guard: not a JSON object of the three strings; a medical term that was not heard
(within a few edits of no word of the ASR caption); most of the heard medical terms left out.
A call that still fails after the client's retries falls back the same way. Answers are cached
by backend, model, prompt version, token budget and ASR caption: a re-run makes no call.

Its readers (the exports, GenMedCLIP's training and scores) take the texts in place of
aligned_pairs' own with `with_curated_texts`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

from mednarratives_assets.atomic_files import write_file
from mednarratives_assets.llm.local_model import LocalChatModel
from mednarratives_assets.llm.prompts import ChatPrompt
from mednarratives_assets.llm.smollm2 import smollm2_gguf
from mednarratives_assets.spoken_text import edit_distance, strip_punctuation
from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.video_cache import content_key

PROMPT_VERSION = "curation-v1"
BACKENDS = ("rules", "openai", "local")
ANSWER_KEYS = ("caption", "medical_text", "roi_text")
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "curated_text",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {key: {"type": "string"} for key in ANSWER_KEYS},
            "required": list(ANSWER_KEYS),
            "additionalProperties": False,
        },
    },
}
CURATED_TEXT_SCHEMA = {
    "channel": pl.Utf8,
    "pair_id": pl.Utf8,
    "video_id": pl.Utf8,
    "chunk_index": pl.Int32,
    "caption": pl.Utf8,
    "medical_text": pl.Utf8,
    "roi_text": pl.Utf8,
    "text_source": pl.Utf8,
    "model": pl.Utf8,
    "prompt_version": pl.Utf8,
    "rejected_reason": pl.Utf8,
}
# aligned_pairs' columns that make the rules result, by the curated column they fill.
RULES_COLUMNS = {"caption": "corrected_caption", "medical_text": "medical_text", "roi_text": "roi_text"}
# curated_text's texts, by the aligned_pairs column whose place each takes where they are read.
CURATED_IN_PLACE_OF = {column: text for text, column in RULES_COLUMNS.items()}
# What else the readers get of curated_text: where the texts come from, why a model's were not used.
CURATION_COLUMNS = ("text_source", "rejected_reason")
_LISTED_PAIR_IDS = 5  # an error names this many of a channel's pairs, and counts the rest
_MOST = 0.5  # an answer that leaves out more than this share of the heard terms is rejected
# A local SmolLM2 answer takes 3 to 5 s: a line about every 2 minutes there, more often from an API.
PROGRESS_EVERY_ANSWERS = 25


@dataclass(frozen=True)
class CurationSettings:
    backend: str = setting("rules", "Where the texts come from.", choices=BACKENDS)
    base_url: str = setting("http://127.0.0.1:8000/v1", "openai backend: the endpoint's base URL.")
    model: str = setting("", "The model's name (openai: required; local: empty takes the file's name).")
    api_key_env: str = setting(
        "", "openai backend: the environment variable that holds the API key; empty sends none."
    )
    gguf_path: str = setting("", "local backend: a GGUF model file; empty takes the pip-shipped SmolLM2.")
    timeout_s: float = setting(60.0, "openai backend: seconds one request may take.", gt=0, unit="seconds")
    max_retries: int = setting(
        2, "openai backend: retries after a timeout, a lost connection, 408, 409, 429 or 5xx.", ge=0, le=10
    )
    concurrency: int = setting(4, "openai backend: requests in flight at once.", ge=1, le=64)
    max_tokens: int = setting(400, "Tokens one answer may take; a longer one is cut off.", ge=1)

    def validated(self) -> CurationSettings:
        check_settings(self, "{name}={value!r} must {rule}")
        if self.backend == "openai":
            if not self.model:
                raise ValueError("model='' must name the endpoint's model for backend='openai'")
            if not self.base_url.startswith(("http://", "https://")):
                raise ValueError(f"base_url={self.base_url!r} must be an http:// or https:// URL")
            if self.api_key_env and self.api_key_env not in os.environ:
                raise ValueError(f"api_key_env={self.api_key_env!r}: no environment variable of that name")
        if self.backend == "local" and self.gguf_path and not Path(self.gguf_path).is_file():
            raise ValueError(f"gguf_path={self.gguf_path!r}: no such file")
        return self


class ChatBackend(Protocol):
    """A model that answers chat messages; `failures` are the errors that mean the call failed
    (after any retries), as opposed to a fault of the code."""

    name: str
    model: str
    concurrency: int
    failures: tuple[type[Exception], ...]

    def answer(self, messages: list[dict], max_tokens: int) -> str: ...


class OpenAIChat:
    """An OpenAI-compatible endpoint through the `openai` client, whose own retries (exponential
    backoff) cover timeouts, lost connections, 408, 409, 429 and 5xx."""

    name = "openai"

    def __init__(self, settings: CurationSettings):
        import openai

        self.model, self.concurrency = settings.model, settings.concurrency
        self.failures = (openai.APIError,)
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            # A local server needs no key; a placeholder keeps the client from reading OPENAI_API_KEY.
            api_key=os.environ[settings.api_key_env] if settings.api_key_env else "no-key",
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )

    def answer(self, messages: list[dict], max_tokens: int) -> str:
        response = self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            max_tokens=max_tokens,
            temperature=0,
            response_format=RESPONSE_FORMAT,
        )
        # Some servers answer 200 with no choices (a filtered or cut-off reply): an empty answer.
        return (response.choices[0].message.content or "") if response.choices else ""


class LocalChat:
    """A GGUF model in this process, loaded at the first call that the cache does not answer."""

    name = "local"
    concurrency = 1  # one model, one lock
    failures = ()

    def __init__(self, settings: CurationSettings, model_cache_dir: Path | None = None):
        path = Path(settings.gguf_path) if settings.gguf_path else smollm2_gguf(model_cache_dir)
        self.model = settings.model or path.stem
        self._chat_model = LocalChatModel(path)

    def answer(self, messages: list[dict], max_tokens: int) -> str:
        return self._chat_model.chat(messages, max_tokens, json_keys=list(ANSWER_KEYS)).content


def chat_backend(settings: CurationSettings) -> ChatBackend:
    """The model behind the openai or local backend."""
    return OpenAIChat(settings) if settings.backend == "openai" else LocalChat(settings)


# Guards -------------------------------------------------------------------------------------------


class RejectedAnswer(ValueError):
    """An answer a guard refused; the message names the guard and the words."""


def parse_answer(content: str) -> dict[str, str]:
    """The answer's three texts; RejectedAnswer when it is not a JSON object of them as strings."""
    try:
        answer = json.loads(content)
    except json.JSONDecodeError as exc:
        raise RejectedAnswer(f"invalid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(answer, dict):
        raise RejectedAnswer(f"invalid JSON: a {type(answer).__name__}, not an object")
    missing = [key for key in ANSWER_KEYS if not isinstance(answer.get(key), str)]
    if missing:
        raise RejectedAnswer(f"invalid JSON: no text for {', '.join(missing)}")
    return {key: answer[key] for key in ANSWER_KEYS}


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; a hyphenated word also gives its parts."""
    found = []
    for token in text.lower().split():
        word = strip_punctuation(token)
        if word:
            found.append(word)
            if "-" in word:
                found += [part for part in word.split("-") if part]
    return found


def allowed_edits(term: str) -> int:
    """How far a heard word may be from a term: ASR misspells long words, but "ct" one edit off is
    "at"."""
    return 0 if len(term) <= 3 else 1 if len(term) <= 5 else 2


def is_near(term: str, heard: set[str]) -> bool:
    limit = allowed_edits(term)
    return term in heard or any(
        abs(len(word) - len(term)) <= limit and edit_distance(term, word) <= limit for word in heard
    )


def heard_words(asr_caption: str, rules_caption: str) -> set[str]:
    """The ASR caption's words, their hyphen-joined neighbours ("ring enhancing" is "ring-enhancing"),
    and the rules caption's: the vocabulary's corrections of what was heard count as heard."""
    heard = set(words(asr_caption)) | set(words(rules_caption))
    plain = [w for w in words(asr_caption) if "-" not in w]
    return heard | {f"{a}-{b}" for a, b in zip(plain, plain[1:], strict=False)}


def invented_terms(answer: dict[str, str], heard: set[str], terms: frozenset[str]) -> list[str]:
    """The answer's medical terms that are within a few edits of no heard word."""
    said = dict.fromkeys(w for key in ANSWER_KEYS for w in words(answer[key]) if w in terms)
    return [term for term in said if not is_near(term, heard)]


def dropped_terms(answer: dict[str, str], rules_caption: str, terms: frozenset[str]) -> tuple[list[str], int]:
    """The heard medical terms (of the rules caption) that the answer's caption and medical text
    leave out, and how many terms were heard."""
    heard_terms = list(dict.fromkeys(w for w in words(rules_caption) if w in terms))
    kept = set(words(answer["caption"])) | set(words(answer["medical_text"]))
    return [term for term in heard_terms if not is_near(term, kept)], len(heard_terms)


def checked_answer(
    content: str, asr_caption: str, rules_caption: str, terms: frozenset[str]
) -> dict[str, str]:
    """The answer's texts when every guard passes; else RejectedAnswer naming the guard and words."""
    answer = parse_answer(content)
    invented = invented_terms(answer, heard_words(asr_caption, rules_caption), terms)
    if invented:
        raise RejectedAnswer(f"invented terms: {', '.join(invented)}")
    dropped, n_heard = dropped_terms(answer, rules_caption, terms)
    if dropped and len(dropped) > _MOST * n_heard:
        raise RejectedAnswer(f"dropped heard terms: {', '.join(dropped)} ({len(dropped)} of {n_heard})")
    return answer


# Cache --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerCache:
    """One JSON file per model answer under `<folder>/<key[:2]>/<key>.json`; folder None caches nothing.
    Only answers are stored, not failed calls: a call that failed is tried again next run."""

    folder: Path | None

    @staticmethod
    def key(backend: ChatBackend, prompt_version: str, max_tokens: int, transcript: str) -> str:
        return content_key(
            backend=backend.name,
            model=backend.model,
            prompt_version=prompt_version,
            max_tokens=max_tokens,
            transcript=transcript,
        )

    def get(self, key: str) -> str | None:
        if self.folder is None:
            return None
        try:
            return json.loads((self.folder / key[:2] / f"{key}.json").read_text(encoding="utf-8"))["content"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
            return None  # absent or damaged: asked again

    def put(self, key: str, content: str, **about: str) -> None:
        if self.folder is not None:
            write_file(self.folder / key[:2] / f"{key}.json", json.dumps({**about, "content": content}))


# The channel --------------------------------------------------------------------------------------


@dataclass
class CurationCounts:
    model_calls: int = 0
    cache_hits: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)  # by guard ("invented terms", "call failed", ...)

    def metadata(self) -> dict:
        return {
            "n_model_calls": self.model_calls,
            "n_cache_hits": self.cache_hits,
            "n_accepted": self.accepted,
            "n_rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
        }

    def summary(self) -> str:
        """One line for the log: "3 asked, 1 from the cache; 2 accepted, 2 rejected (call failed: 1, ...)"."""
        n_rejected = sum(self.rejected.values())
        by_reason = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.rejected.items()))
        return (
            f"{self.model_calls} asked, {self.cache_hits} from the cache; {self.accepted} accepted, "
            f"{n_rejected} rejected" + (f" ({by_reason})" if by_reason else "")
        )


@dataclass(frozen=True)
class CuratedText:
    table: pl.DataFrame
    counts: CurationCounts


def curate_channel(
    pairs: pl.DataFrame,
    settings: CurationSettings,
    terms: frozenset[str],
    cache: AnswerCache,
    backend: ChatBackend | None = None,
    log: Callable[[str], None] = print,
) -> CuratedText:
    """The `curated_text` table of one channel's `aligned_pairs` rows. `terms`: the medical term
    list (MedicalVocabulary.terms). `backend` overrides the one `settings` name (rules takes none)."""
    rows = [
        {c: p[c] for c in ("channel", "pair_id", "video_id", "chunk_index")}
        | {text: p[column] for text, column in RULES_COLUMNS.items()}
        | {"text_source": "rules", "model": None, "prompt_version": None, "rejected_reason": None}
        for p in pairs.iter_rows(named=True)
    ]
    counts = CurationCounts()
    if settings.backend == "rules" or not rows:
        return CuratedText(pl.DataFrame(rows, schema=CURATED_TEXT_SCHEMA), counts)
    backend = backend or chat_backend(settings)
    prompt = ChatPrompt.load(PROMPT_VERSION)
    captions = pairs["caption"].to_list()
    keys = [AnswerCache.key(backend, PROMPT_VERSION, settings.max_tokens, caption) for caption in captions]
    answers: list[str | Exception | None] = [cache.get(key) for key in keys]
    counts.cache_hits = sum(answer is not None for answer in answers)
    to_ask = [i for i, answer in enumerate(answers) if answer is None]

    def ask(i: int) -> str | Exception:
        try:
            content = backend.answer(prompt.chat(captions[i]), settings.max_tokens)
        except backend.failures as exc:
            return exc
        cache.put(keys[i], content, backend=backend.name, model=backend.model, prompt_version=PROMPT_VERSION)
        return content

    if to_ask:
        log(f"asking {backend.name} model {backend.model!r} about {len(to_ask)} pairs")
    with ThreadPoolExecutor(max_workers=min(backend.concurrency, max(1, len(to_ask)))) as pool:
        pending = {pool.submit(ask, i): i for i in to_ask}
        failed = 0
        for done, future in enumerate(as_completed(pending), start=1):
            result = answers[pending[future]] = future.result()
            failed += isinstance(result, Exception)
            if done % PROGRESS_EVERY_ANSWERS == 0 and done < len(to_ask):
                log(f"{done} of {len(to_ask)} calls done, {failed} failed")
    counts.model_calls = len(to_ask)
    for row, caption, answer in zip(rows, captions, answers, strict=True):
        row.update(model=backend.model, prompt_version=PROMPT_VERSION)
        try:
            if isinstance(answer, Exception):
                raise RejectedAnswer(f"call failed: {type(answer).__name__}: {answer}")
            row.update(checked_answer(answer, caption, row["caption"], terms), text_source=backend.name)
            counts.accepted += 1
        except RejectedAnswer as rejected:
            row["rejected_reason"] = str(rejected)
            counts.rejected[str(rejected).split(":")[0]] += 1
    log(f"{backend.name} model {backend.model!r}: {counts.summary()}")
    return CuratedText(pl.DataFrame(rows, schema=CURATED_TEXT_SCHEMA), counts)


# Its readers -------------------------------------------------------------------------------------


def with_curated_texts(pairs: pl.DataFrame, curated: pl.DataFrame, then: str) -> pl.DataFrame:
    """`pairs` (aligned_pairs) with `curated` (curated_text) joined on pair_id: its caption, medical
    text and ROI text in place of corrected_caption, medical_text and roi_text, then its text_source
    and rejected_reason; `caption` stays as heard. ValueError naming the channels and pairs that
    `curated` has no row for, and what to do: materialize curated_text for them, then `then`
    ("export again")."""
    # Such a pair fails its reader rather than taking the rules texts: curated_text is stale there
    # (a run left it out), what the reader made before stays whole with whatever a model wrote, and
    # no pair is labelled `rules` or trained on as such that the configured backend never saw.
    uncurated = pairs.join(curated, on="pair_id", how="anti")
    if not uncurated.is_empty():
        raise ValueError(uncurated_message(uncurated, then))
    texts = curated.select(
        "pair_id",
        *(pl.col(text).alias(column) for column, text in CURATED_IN_PLACE_OF.items()),
        *CURATION_COLUMNS,
    )
    return (
        pairs.drop(*CURATED_IN_PLACE_OF)
        .join(texts, on="pair_id", how="left", maintain_order="left")
        .select(*pairs.columns, *CURATION_COLUMNS)
    )


def uncurated_message(uncurated: pl.DataFrame, then: str) -> str:
    """What is wrong and what to run, for the pairs (channel, pair_id) that curated_text lacks."""
    per_channel = uncurated.group_by("channel").agg(pl.col("pair_id").sort()).sort("channel")
    named = []
    for channel, ids in per_channel.iter_rows():
        listed = ", ".join(ids[:_LISTED_PAIR_IDS])
        if len(ids) > _LISTED_PAIR_IDS:
            listed += f" and {len(ids) - _LISTED_PAIR_IDS} more"
        named.append(f"{len(ids)} pair(s) of channel {channel!r} ({listed})")
    channels = ", ".join(per_channel["channel"])
    return (
        f"curated_text has no row for {'; '.join(named)}: it is older than aligned_pairs there. "
        f"Materialize curated_text for channel(s) {channels}, then {then}"
    )
