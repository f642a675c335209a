"""The voice axis: every installed voice, with rate, pitch, room noise and level, and exact word times."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mednarratives_assets.spoken_text import strip_punctuation
from mednarratives_assets.synthetic.voices import (
    ESPEAK_ACCENTS,
    VoiceStyle,
    available_voices,
    narrator,
    room_audio,
)

PIPER = "piper:en_US-joe-medium"
SENTENCE = (
    "Notice the hypodense area of the left lobe, adjacent to the ventricle. Out of the lung; now the heart."
)
SHORT = "Describe the size of a finding, then its contrast."
# One variant per accent, so that every accent family and most variants are heard.
ACCENT_VOICES = [
    f"espeak:{accent}+{variant}"
    for accent, variant in zip(
        ESPEAK_ACCENTS, ["m1", "f2", "m3", "f4", "m5", "f5", "robert", "linda"], strict=True
    )
]


def written_words(text: str) -> list[str]:
    return [strip_punctuation(token) for token in text.split()]


def peak_near(audio: np.ndarray, sample_rate: int, t: float, seconds: float = 0.15) -> float:
    start = int(t * sample_rate)
    return float(np.abs(audio[start : start + int(seconds * sample_rate)]).max())


def median_f0(audio: np.ndarray, sample_rate: int) -> float:
    """Median pitch of the loud frames, from each frame's autocorrelation peak between 60 and 400 Hz."""
    frame = int(0.04 * sample_rate)
    shortest, longest = int(sample_rate / 400), int(sample_rate / 60)
    loudest = max(np.sqrt(np.mean(audio[i : i + frame] ** 2)) for i in range(0, len(audio) - frame, frame))
    pitches = []
    for i in range(0, len(audio) - frame, frame // 2):
        x = audio[i : i + frame] - audio[i : i + frame].mean()
        if np.sqrt(np.mean(x**2)) < 0.3 * loudest:
            continue
        spectrum = np.fft.rfft(x, 2 * frame)
        correlation = np.fft.irfft(np.abs(spectrum) ** 2)[:frame]
        lag = shortest + int(np.argmax(correlation[shortest:longest]))
        if correlation[lag] > 0.5 * correlation[0]:
            pitches.append(sample_rate / lag)
    assert len(pitches) > 10
    return float(np.median(pitches))


def onsets_after_pauses(audio: np.ndarray, sample_rate: int, pause_s: float = 0.08) -> list[float]:
    """Where sound starts after at least `pause_s` of silence (the start of the audio counts as one)."""
    loud = np.flatnonzero(np.abs(audio) >= 0.01 * np.abs(audio).max())
    gaps = np.flatnonzero(np.diff(loud) > pause_s * sample_rate)
    return [loud[0] / sample_rate, *(loud[gaps + 1] / sample_rate)]


def test_every_accent_family_and_piper_are_installed():
    voices = available_voices()
    assert PIPER in voices
    for accent in ESPEAK_ACCENTS:
        assert {f"espeak:{accent}+m1", f"espeak:{accent}+f1", f"espeak:{accent}+m7"} <= set(voices)
    assert all(v.startswith(("piper:", "espeak:")) for v in voices)
    assert not any(v.endswith(("+whisper", "+croak", "+Zac")) for v in voices)


@pytest.mark.parametrize("voice", [*ACCENT_VOICES, PIPER])
def test_each_voice_speaks_every_word_in_order_where_its_sound_is(voice):
    utterance = narrator(VoiceStyle(voice)).say(SENTENCE)
    audio, rate = utterance.audio, utterance.sample_rate
    assert audio.dtype == np.float32 and utterance.sample_rate == narrator(VoiceStyle(voice)).sample_rate
    assert [w.word for w in utterance.words] == written_words(SENTENCE)
    assert utterance.words[0].start_s < 0.5
    for word, following in zip(utterance.words, utterance.words[1:], strict=False):
        assert word.start_s < word.end_s <= following.start_s + 1e-9
    assert utterance.words[-1].end_s <= len(audio) / rate
    for word in utterance.words:
        assert peak_near(audio, rate, word.start_s) > 0.1 * np.abs(audio).max(), word
    # A long word takes longer than a short one: spans follow the sound.
    lengths = {w.word: w.end_s - w.start_s for w in utterance.words}
    assert lengths["hypodense"] > 2 * lengths["of"]


@pytest.mark.parametrize("voice", ["espeak:en-US+m3", "espeak:en-GB-x-rp+f1", "espeak:en-029+paul"])
@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_espeak_word_starts_land_on_the_sound_after_each_pause(voice, rate):
    utterance = narrator(VoiceStyle(voice, rate=rate)).say(SENTENCE)
    onsets = onsets_after_pauses(utterance.audio, utterance.sample_rate)
    assert len(onsets) >= 3  # the start, the comma, the full stop, the semicolon
    starts = np.array([w.start_s for w in utterance.words])
    for onset in onsets:
        assert np.abs(starts - onset).min() <= 0.060, f"no word starts near the onset at {onset:.3f} s"


def test_espeak_splits_words_it_joins_at_their_phonemes():
    # espeak says "of the" and "out of" as one word with one word event; each word still gets its span.
    utterance = narrator(VoiceStyle("espeak:en-US+m2")).say("Out of the lung.")
    out, of, the, lung = utterance.words
    assert [w.word for w in utterance.words] == ["Out", "of", "the", "lung"]
    assert out.start_s < of.start_s < the.start_s < lung.start_s
    assert min(of.end_s - of.start_s, the.end_s - the.start_s) > 0.03


def test_tokens_a_voice_cannot_say_are_left_out():
    utterance = narrator(VoiceStyle("espeak:en+f3")).say("left · lobe")
    assert [w.word for w in utterance.words] == ["left", "lobe"]
    with pytest.raises(ValueError, match="nothing to say"):
        narrator(VoiceStyle("espeak:en+f3")).say("· |")


@pytest.mark.parametrize("voice", ["espeak:en-US-nyc+m4", PIPER])
def test_a_faster_rate_speaks_the_same_text_in_less_time(voice):
    fast = narrator(VoiceStyle(voice, rate=1.25)).say(SHORT)
    slow = narrator(VoiceStyle(voice, rate=0.8)).say(SHORT)
    assert len(fast.audio) < 0.85 * len(slow.audio)
    assert fast.words[-1].end_s < slow.words[-1].end_s


@pytest.mark.parametrize("voice", ["espeak:en-GB-scotland+m6", PIPER])
def test_pitch_raises_the_voice_and_leaves_the_duration(voice):
    high = narrator(VoiceStyle(voice, pitch=4.0)).say(SHORT)
    low = narrator(VoiceStyle(voice, pitch=-4.0)).say(SHORT)
    # 8 semitones apart: a factor of 1.59
    assert median_f0(high.audio, high.sample_rate) > 1.3 * median_f0(low.audio, low.sample_rate)
    assert abs(len(high.audio) / len(low.audio) - 1) < 0.05
    assert [w.word for w in high.words] == written_words(SHORT)
    # Resampled word times still fall where the words sound.
    for word in high.words:
        assert peak_near(high.audio, high.sample_rate, word.start_s) > 0.1 * np.abs(high.audio).max()


@pytest.mark.parametrize("voice", ["espeak:en-US+f5", PIPER])
def test_the_same_text_and_style_give_the_same_audio(voice):
    style = VoiceStyle(voice, rate=1.1, pitch=2.5, level_db=-6.0)
    first = narrator(style).say(SHORT)
    narrator(VoiceStyle(voice, pitch=-1.0)).say("Something else in between, to move any state on.")
    time.sleep(1.1)  # espeak-ng seeds its noise from the clock's seconds unless told otherwise
    again = narrator(style).say(SHORT)
    assert np.array_equal(first.audio, again.audio) and first.words == again.words
    assert np.abs(first.audio).max() == pytest.approx(10 ** (-6 / 20), rel=1e-4)


@pytest.mark.parametrize(("noise_db", "level_db"), [(-60.0, -3.0), (-35.0, -12.0)])
def test_room_audio_puts_the_speech_peak_and_the_noise_where_the_style_says(noise_db, level_db):
    style = VoiceStyle("espeak:en-GB-x-gbclan+m7", noise_db=noise_db, level_db=level_db)
    spoken = narrator(VoiceStyle("espeak:en-GB-x-gbclan+m7", level_db=-20.0)).say(SHORT)
    rate = spoken.sample_rate
    silence = int(1.5 * rate)
    speech = np.concatenate([spoken.audio, np.zeros(silence, np.float32)])
    mixed = room_audio(speech, rate, style, np.random.default_rng(3))
    assert mixed.dtype == np.float32 and len(mixed) == len(speech) and np.abs(mixed).max() <= 1.0

    peak_db = 20 * np.log10(np.abs(mixed[: len(spoken.audio)]).max())
    assert peak_db == pytest.approx(level_db, abs=0.3)
    quiet = mixed[-silence:]
    noise_rms_db = 20 * np.log10(np.sqrt(np.mean(quiet**2)))
    assert noise_rms_db == pytest.approx(level_db + noise_db, abs=1.5)

    # Room noise is coloured (more power per hertz low than high), not white.
    power = np.abs(np.fft.rfft(quiet)) ** 2
    frequencies = np.fft.rfftfreq(len(quiet), 1 / rate)
    low = power[(frequencies > 30) & (frequencies < 500)].mean()
    high = power[(frequencies > 4000) & (frequencies < 8000)].mean()
    assert low > 30 * high
    assert np.array_equal(mixed, room_audio(speech, rate, style, np.random.default_rng(3)))


def test_room_audio_hums_at_a_mains_frequency():
    rate = 22050
    style = VoiceStyle("espeak:en+m1", noise_db=-40.0)
    speech = np.zeros(rate * 4, np.float32)
    speech[100] = 0.5  # a click, so that the speech has a peak
    hums = set()
    for seed in range(8):
        noise = room_audio(speech, rate, style, np.random.default_rng(seed))[rate:]
        power = np.abs(np.fft.rfft(noise)) ** 2
        frequencies = np.fft.rfftfreq(len(noise), 1 / rate)
        for mains in (50, 60):
            line = power[np.abs(frequencies - mains) < 0.5].max()
            around = np.median(power[(np.abs(frequencies - mains) > 3) & (np.abs(frequencies - mains) < 10)])
            if line > 20 * around:
                hums.add(mains)
    assert hums == {50, 60}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate", 1.5),
        ("rate", 0.5),
        ("pitch", 4.5),
        ("pitch", float("nan")),
        ("noise_db", -20.0),
        ("level_db", 0.0),
    ],
)
def test_a_value_outside_its_range_names_the_field_and_the_range(field, value):
    with pytest.raises(ValueError, match=rf"VoiceStyle\.{field}=.* outside its range"):
        VoiceStyle("espeak:en+m1", **{field: value})


def test_an_unknown_voice_lists_the_installed_ones():
    with pytest.raises(ValueError, match=r"'espeak:en\+robot' is not an installed voice.*espeak:en\+m1"):
        VoiceStyle("espeak:en+robot")
