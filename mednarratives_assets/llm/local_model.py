"""A chat model from a GGUF file on the CPU (transformers dequantizes it; the `gguf` and `accelerate`
packages must be installed), loaded at its first use. Generation is greedy and serialized by one lock.

A small model rarely writes valid JSON on its own, so a JSON answer is filled one key at a time:
each value is generated after the JSON so far and stops at its closing quote. The answer is valid
JSON unless the token budget runs out first; then it is cut off where the budget ended, as a
server's answer is.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# transformers' GGUF tokenizer reports <|im_start|> as its end token; ChatML turns end with this one.
END_OF_TURN = "<|im_end|>"


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str  # stop, or length when the token budget ran out
    prompt_tokens: int
    completion_tokens: int


class LocalChatModel:
    """Chat completions from one GGUF model. `threads` sets torch's thread count at load (None
    leaves the process's setting alone)."""

    def __init__(self, gguf_path: Path, threads: int | None = None):
        self.gguf_path = Path(gguf_path)
        self.threads = threads
        self.load_seconds: float | None = None
        self._lock = threading.Lock()
        self._tokenizer = None
        self._model = None

    def load(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not self.gguf_path.is_file():
            raise FileNotFoundError(f"no GGUF model at {self.gguf_path}")
        if self.threads:
            torch.set_num_threads(self.threads)
        started = time.perf_counter()
        folder, name = str(self.gguf_path.parent), self.gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
        self._end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        # Tokens that hold a quote end a JSON string value.
        self._quote_ids = [
            i
            for token, i in tokenizer.get_vocab().items()
            if '"' in tokenizer.convert_tokens_to_string([token])
        ]
        self._tokenizer, self._model = tokenizer, model
        self.load_seconds = time.perf_counter() - started

    def chat(self, messages: list[dict], max_tokens: int, json_keys: list[str] | None = None) -> Completion:
        """The assistant's answer to `messages`; with `json_keys`, a JSON object of those string keys."""
        with self._lock:
            self._load()
            prompt = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            if json_keys:
                return self._json_answer(prompt, json_keys, max_tokens)
            text, n_new, finish = self._generate(prompt, max_tokens)
            return Completion(text, finish, self._count_tokens(prompt), n_new)

    def _json_answer(self, prompt: str, keys: list[str], max_tokens: int) -> Completion:
        so_far, used = "{", 0
        for i, key in enumerate(keys):
            so_far += ("" if i == 0 else ", ") + json.dumps(key) + ': "'
            value, n_new, finish = self._generate(prompt + so_far, max_tokens - used, stop_at_quote=True)
            used += n_new
            if finish == "length":
                return Completion(so_far + value, "length", self._count_tokens(prompt), used)
            so_far += json.dumps(value.split('"')[0].replace("\\", "").strip())[1:]
        return Completion(so_far + "}", "stop", self._count_tokens(prompt), used)

    def _generate(self, text: str, budget: int, stop_at_quote: bool = False) -> tuple[str, int, str]:
        import torch

        if budget <= 0:
            return "", 0, "length"
        ids = self._tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        ends = [self._end_id, *(self._quote_ids if stop_at_quote else [])]
        with torch.inference_mode():
            out = self._model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=budget,
                do_sample=False,
                eos_token_id=ends,
                pad_token_id=self._end_id,
            )
        new = out[0, ids.shape[1] :].tolist()
        finish = "stop" if new and new[-1] in ends else "length"
        return self._tokenizer.decode(new, skip_special_tokens=True), len(new), finish

    def _count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False).input_ids)
