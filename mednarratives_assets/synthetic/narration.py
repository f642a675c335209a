"""How a lecturer words a case: the templates of its intro, its pointing sentences and its closing.

The finding sentences come from the image's caption; everything a lecturer adds around them is
worded by one narration style. Styles differ where text curation is sensitive: whether an intro
says "this", whether a pointing sentence holds a referring word ("here", "this"), whether it is a
statement or a question. `synthetic/styles.py` decides which styles are reserved.

Each intro takes `{a}` (a or an), `{modality}` and `{region}`; each pointing sentence takes
`{phrase}` (the region's noun phrase, which the pointer follows from its first word) and
`{position}` ("in the upper left"). One written word is one spoken word (no contractions, no
digits): the pointer choreography finds the phrase's first word by its place in the sentence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NarrationTemplates:
    intros: tuple[str, ...]
    pointing: tuple[str, ...]
    closings: tuple[str, ...]
    determiner: str = "this"  # how a pointed-at region is named: "this bright focus", "the bright focus"

    def region_phrase(self, phrase: str) -> str:
        """A region's noun phrase ("this bright focus") with this narration's determiner."""
        return f"{self.determiner} {phrase.split(' ', 1)[1]}"


NARRATIONS = {
    # The demo channels' narration, and the one every pipeline setting was first chosen on.
    "classic": NarrationTemplates(
        intros=(
            "Next, we have {a} {modality} of the {region}.",
            "Let us look at this {modality} of the {region}.",
            "Here is {a} {modality} of the {region}.",
            "This case is {a} {modality} of the {region}.",
        ),
        pointing=(
            "Notice {phrase} {position}.",
            "Now look at {phrase} here, {position}.",
            "There is {phrase} {position}, which is worth pointing out.",
            "Here you can see {phrase} {position}.",
        ),
        closings=(
            "So keep this pattern in mind.",
            "That is the key finding on this image.",
            "Remember this appearance for the exam.",
        ),
    ),
    "conversational": NarrationTemplates(
        intros=(
            "Okay, the next one is {a} {modality} of the {region}.",
            "Moving on, we have {a} {modality} of the {region}.",
            "Take a look at this {modality} of the {region}.",
            "Our next case is {a} {modality} of the {region}.",
        ),
        pointing=(
            "If you look {position}, you can see {phrase}.",
            "You can appreciate {phrase} right here, {position}.",
            "I want you to see {phrase} {position}.",
            "Look carefully at {phrase} {position}.",
        ),
        closings=(
            "Okay, let us move on.",
            "Keep that one in mind.",
            "So that is the main point of this case.",
        ),
        determiner="the",
    ),
    # An attending's shorthand: no referring words at all.
    "terse": NarrationTemplates(
        intros=(
            "Now {a} {modality} of the {region}.",
            "The next study is {a} {modality} of the {region}.",
            "We move on to {a} {modality} of the {region}.",
            "Next, {a} {modality} of the {region}.",
        ),
        pointing=(
            "Note {phrase} {position}.",
            "Observe {phrase} {position}.",
            "We see {phrase} {position}.",
            "Key feature, {phrase} {position}.",
        ),
        closings=("Moving on.", "That is the diagnosis.", "A classic appearance."),
        determiner="the",
    ),
    # A teacher who asks: pointing sentences are questions.
    "socratic": NarrationTemplates(
        intros=(
            "What do you make of this {modality} of the {region}?",
            "Let me show you {a} {modality} of the {region}, and you tell me what you see.",
            "Here is a quiz case, {a} {modality} of the {region}.",
            "So what is going on in this {modality} of the {region}?",
        ),
        pointing=(
            "Do you see {phrase} over here, {position}?",
            "What about {phrase} {position}?",
            "Can anyone describe {phrase} {position}?",
            "Why does {phrase} {position} matter?",
        ),
        closings=(
            "What would you do next?",
            "Think about the differential for that one.",
            "Any questions on this case?",
        ),
    ),
}
DEMO_NARRATION = "classic"
