"""curated_text's openai backend against a real OpenAI-compatible server on 127.0.0.1: the project's
own (`python -m mednarratives_assets.llm.server`) serving the pip-shipped SmolLM2-135M. Its answers
are greedy, so each case below gets the same answer every run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.llm.server import served
from mednarratives_assets.llm.smollm2 import ModelUnavailable, smollm2_gguf
from mednarratives_assets.stages.curated_text import AnswerCache, CurationSettings, curate_channel
from mednarratives_tests.servers import free_port, wait_until
from mednarratives_tests.test_curated_text import pairs_of

pytestmark = pytest.mark.integration  # and so slow (conftest.py)

TERMS = MedicalVocabulary().terms
MODEL = "SmolLM2-135M-Instruct.Q4_1"
EFFUSION = "so here on this ct scan of the chest we can see a large pleural effusion on the right side"
# SmolLM2-135M answers that this was "an MRI of the liver": a term nobody said.
LIVER_CYST = "this hypodense lesion in the liver is a cyst"


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[str]:
    """The server's base URL (…/v1), once its model has loaded."""
    try:
        smollm2_gguf()
    except ModelUnavailable as exc:
        pytest.skip(f"the SmolLM2 model cannot be obtained: {exc}")

    with served(tmp_path_factory.mktemp("llm-server") / "server.log") as url:
        yield url


def completions(server: str) -> int:
    return requests.get(server.removesuffix("/v1") + "/health", timeout=10).json()["chat_completions"]


def settings(server: str, **changes) -> CurationSettings:
    return CurationSettings(backend="openai", base_url=server, model=MODEL, **changes).validated()


def test_the_server_lists_its_model_and_counts_completions(server):
    models = requests.get(f"{server}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [MODEL]
    assert isinstance(completions(server), int)


def test_a_good_answer_is_accepted(server):
    result = curate_channel(pairs_of([EFFUSION]), settings(server), TERMS, AnswerCache(None))
    [row] = result.table.to_dicts()
    assert row["rejected_reason"] is None and row["text_source"] == "openai" and row["model"] == MODEL
    assert "pleural effusion" in row["caption"].lower()
    assert result.counts.accepted == 1 and result.counts.model_calls == 1


def test_an_answer_cut_off_by_its_token_budget_is_invalid_json(server):
    pairs = pairs_of([EFFUSION])
    result = curate_channel(pairs, settings(server, max_tokens=5), TERMS, AnswerCache(None))
    [row] = result.table.to_dicts()
    assert row["rejected_reason"].startswith("invalid JSON: Unterminated string")
    assert row["text_source"] == "rules" and row["caption"] == pairs["corrected_caption"][0]
    assert result.counts.metadata()["rejected_by_reason"] == {"invalid JSON": 1}


def test_an_answer_with_a_term_that_was_not_said_is_rejected(server):
    pairs = pairs_of([LIVER_CYST])
    result = curate_channel(pairs, settings(server), TERMS, AnswerCache(None))
    [row] = result.table.to_dicts()
    assert row["rejected_reason"] == "invented terms: mri"
    assert row["text_source"] == "rules" and row["caption"] == pairs["corrected_caption"][0]


def test_a_timeout_falls_back_to_the_rules_texts(server):
    before = completions(server)
    pairs = pairs_of([EFFUSION])
    result = curate_channel(pairs, settings(server, timeout_s=0.05, max_retries=0), TERMS, AnswerCache(None))
    [row] = result.table.to_dicts()
    assert row["rejected_reason"] == "call failed: APITimeoutError: Request timed out."
    assert row["text_source"] == "rules" and row["caption"] == pairs["corrected_caption"][0]
    # The server finishes the abandoned answer; later tests count from there.
    wait_until(lambda: completions(server) == before + 1, 120, "the abandoned answer", poll_s=0.2)


def test_a_server_that_is_down_falls_back_to_the_rules_texts():
    closed = f"http://127.0.0.1:{free_port()}/v1"
    result = curate_channel(pairs_of([EFFUSION]), settings(closed, max_retries=1), TERMS, AnswerCache(None))
    [row] = result.table.to_dicts()
    assert row["rejected_reason"] == "call failed: APIConnectionError: Connection error."
    assert result.counts.metadata()["rejected_by_reason"] == {"call failed": 1}


def test_a_rerun_makes_no_call(server, tmp_path):
    pairs, cache = pairs_of([EFFUSION, LIVER_CYST]), AnswerCache(tmp_path / "curated_text")
    before = completions(server)
    first = curate_channel(pairs, settings(server, concurrency=2), TERMS, cache)
    assert completions(server) == before + 2 and first.counts.model_calls == 2
    again = curate_channel(pairs, settings(server, concurrency=2), TERMS, cache)
    assert completions(server) == before + 2
    assert again.table.equals(first.table)
    assert again.counts.metadata()["n_cache_hits"] == 2 and again.counts.model_calls == 0
    assert again.table["rejected_reason"].to_list() == [None, "invented terms: mri"]
