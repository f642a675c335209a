"""Narration: speakable text, and word times from piper's phoneme alignments."""

from __future__ import annotations

import numpy as np
import pytest

from mednarratives_assets.spoken_text import speakable
from mednarratives_assets.synthetic.speech import PiperNarrator


@pytest.fixture(scope="module")
def narrator() -> PiperNarrator:
    return PiperNarrator()


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("A 1.2 cm lesion", "A one point two centimeters lesion"),
        ("in 3 of 10 cases (30%)", "in three of ten cases thirty percent"),
        ("T2-weighted, e.g. FLAIR", "T2 weighted, for example FLAIR"),
        ("liver & spleen — normal", "liver and spleen normal"),
    ],
)
def test_speakable_spells_out_what_is_read_aloud(written, spoken):
    assert speakable(written) == spoken


def test_every_word_gets_an_ordered_span_inside_the_audio(narrator):
    sentence = "Notice the hypodense area of the left lobe, adjacent to the ventricle."
    utterance = narrator.say(sentence)
    assert [w.word for w in utterance.words] == [t.strip(",.") for t in sentence.split()]
    duration = len(utterance.audio) / utterance.sample_rate
    starts = [w.start_s for w in utterance.words]
    assert starts == sorted(starts)
    for word, following in zip(utterance.words, utterance.words[1:], strict=False):
        assert 0 <= word.start_s < word.end_s <= following.start_s + 1e-9
    assert utterance.words[-1].end_s <= duration
    # "hypodense" is a long word and "of" a short one: the spans follow the sound, not an even split.
    lengths = {w.word: w.end_s - w.start_s for w in utterance.words}
    assert lengths["hypodense"] > 2 * lengths["of"]


@pytest.mark.parametrize(
    "sentence", ["Let me zoom in for a closer look.", "Describe the size of a finding, then its contrast."]
)
def test_sentences_are_spoken_as_the_voice_reads_them_whole(narrator, sentence):
    # Word times must not cost fluency: the audio is what piper makes of the whole sentence. (Alone,
    # espeak reads "a" as the letter's name; inside the sentence it is a weak vowel.)
    from piper import SynthesisConfig

    whole = narrator.voice.synthesize(sentence, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    assert sum(len(chunk.audio_float_array) for chunk in whole) == len(narrator.say(sentence).audio)


def test_speech_is_deterministic(narrator):
    first, again = narrator.say("The same text."), narrator.say("The same text.")
    assert np.array_equal(first.audio, again.audio) and first.words == again.words


def test_tokens_the_voice_cannot_say_are_left_out(narrator):
    utterance = narrator.say("left · lobe")
    assert [w.word for w in utterance.words] == ["left", "lobe"]
    with pytest.raises(ValueError, match="nothing to say"):
        narrator.say("· |")
