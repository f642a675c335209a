"""Versioned prompts: `prompts/<version>.md`, one chat message per `## role` heading (the text
above the first heading is a note for people). A prompt is never edited, only added."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).with_name("prompts")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatPrompt:
    version: str
    messages: tuple[tuple[str, str], ...]  # (role, text) with `{transcript}` in the last message

    @classmethod
    def load(cls, version: str) -> ChatPrompt:
        path = PROMPTS_DIR / f"{version}.md"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.md")))
            raise ValueError(f"no prompt {version!r} in {PROMPTS_DIR}; known: {known}")
        messages: list[tuple[str, list[str]]] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("## "):
                role = line[3:].strip()
                if role not in ROLES:
                    raise ValueError(f"{path}: unknown role {role!r} (one of {', '.join(ROLES)})")
                messages.append((role, []))
            elif messages:
                messages[-1][1].append(line)
        if not messages or "{transcript}" not in "\n".join(messages[-1][1]):
            raise ValueError(f"{path}: the last message must hold {{transcript}}")
        return cls(version, tuple((role, "\n".join(lines).strip()) for role, lines in messages))

    def chat(self, transcript: str) -> list[dict]:
        """The messages for one transcript (only the placeholder is replaced: braces in the
        examples' JSON stay as they are)."""
        last = len(self.messages) - 1
        return [
            {"role": role, "content": text.replace("{transcript}", transcript) if i == last else text}
            for i, (role, text) in enumerate(self.messages)
        ]
