"""ASR parts: audio extraction, engine settings, both engines, medical vocabulary, scoring."""

from __future__ import annotations

import hashlib
import re
import statistics
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mednarratives_assets.asr.audio import (
    SAMPLE_RATE,
    NoSpeechAudio,
    Windowing,
    load_audio,
    open_audio,
    quietest_cut,
)
from mednarratives_assets.asr.checkpoints import (
    CHECKPOINTS,
    DEFAULT_CHECKPOINT,
    MODEL_CACHE_ENV,
    MODEL_FILES,
    CheckpointError,
    PackagedCheckpoint,
    Part,
    checkpoint_folder,
)
from mednarratives_assets.asr.engines import (
    DECODING_OPTIONS,
    TORCHAUDIO_ALIGN_FILE,
    AlignmentModelUnavailable,
    AsrConfigError,
    AsrResult,
    AsrSegment,
    AsrSettings,
    AsrWord,
    FasterWhisperEngine,
    WhisperXEngine,
    build_engine,
    find_alignment_model,
    joined_decimals,
    merge_windows,
    sentence_segments,
)
from mednarratives_assets.asr.vocabulary import PROMPT, MedicalVocabulary
from mednarratives_assets.asr.word_times import shift_word_times
from mednarratives_assets.evaluation.transcript_scores import TimedWord, score_words, signed_start_errors
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.synthetic.speech import PiperNarrator
from mednarratives_tests.asr_fixtures import save_tiny_alignment_model, write_narrated_video
from mednarratives_tests.conftest import make_video

SENTENCES = [
    "Here is an axial CT of the abdomen.",
    "Notice the hypodense lesion in the right lobe of the liver.",
    "On the T2 weighted image it is hyperintense.",
    "The findings suggest a simple cyst.",
]


LONGER = [
    *SENTENCES,
    "The spleen and the kidneys look normal.",
    "There is no free fluid in the pelvis.",
]
# Small windows, so that a 20 s clip is cut twice (the defaults cut every 10 minutes).
SMALL_WINDOWS = Windowing(window_s=8.0, search_s=3.5, quiet_s=0.3)


@pytest.fixture(scope="module")
def narrated(tmp_path_factory) -> tuple[Path, list[TimedWord]]:
    path = tmp_path_factory.mktemp("narrated") / "clip.mp4"
    return path, write_narrated_video(path, PiperNarrator(), SENTENCES)


@pytest.fixture(scope="module")
def narrated_longer(tmp_path_factory) -> tuple[Path, list[tuple[str, float, float]]]:
    """About 20 s of sentences with 0.8 s pauses; each word with its start and end."""
    narrator = PiperNarrator()
    rate, pause = narrator.sample_rate, np.zeros(int(0.8 * narrator.sample_rate), np.float32)
    pieces, words, offset = [pause], [], pause.size / rate
    for sentence in LONGER:
        utterance = narrator.say(sentence)
        words += [(w.word, offset + w.start_s, offset + w.end_s) for w in utterance.words]
        pieces += [utterance.audio, pause]
        offset += (utterance.audio.size + pause.size) / rate
    audio = np.concatenate(pieces)
    path = tmp_path_factory.mktemp("longer") / "clip.mp4"
    frames = (np.full((96, 160, 3), 40, np.uint8) for _ in range(round(audio.size / rate * 5)))
    write_mp4(path, frames, fps=5, audio=audio, sample_rate=rate)
    return path, words


# --- audio -----------------------------------------------------------------------------------


def test_audio_is_decoded_from_the_mp4_without_an_ffmpeg_executable(narrated, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no ffmpeg to find
    path, truth = narrated
    audio = load_audio(path)
    assert audio.samples.dtype == np.float32
    assert audio.duration_s == pytest.approx(truth[-1].start_s + 0.5, abs=1.0)


def test_a_video_without_audio_or_with_silence_gives_a_reason(tmp_path):
    with pytest.raises(NoSpeechAudio, match="no audio stream"):
        load_audio(make_video(tmp_path / "mute.mp4", audio=False))
    silent = tmp_path / "silent.mp4"
    from mednarratives_assets.mp4 import write_mp4

    write_mp4(silent, (np.zeros((96, 160, 3), np.uint8) for _ in range(10)), fps=10, audio=np.zeros(16_000))
    with pytest.raises(NoSpeechAudio, match="silent audio"):
        load_audio(silent)


def test_a_file_that_is_not_media_names_itself(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(ValueError, match="notes.mp4: not a readable media file"):
        load_audio(bad)
    with pytest.raises(ValueError, match="notes.mp4: not a readable media file"):
        open_audio(bad)


def test_a_track_shorter_than_a_window_is_one_window_with_faster_whispers_samples(narrated):
    from faster_whisper.audio import decode_audio

    path, _truth = narrated
    track = open_audio(path)
    [window] = list(track.windows())
    reference = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    assert window.start_s == 0.0 and np.array_equal(window.samples, reference)
    assert np.array_equal(load_audio(path).samples, reference)
    assert track.decoded_s == pytest.approx(reference.size / SAMPLE_RATE)
    assert track.duration_s == pytest.approx(track.decoded_s, abs=0.1)


def test_windows_are_cut_in_pauses_and_together_are_the_whole_track(narrated_longer):
    path, words = narrated_longer
    windows = list(open_audio(path).windows(SMALL_WINDOWS))
    whole = load_audio(path).samples
    assert len(windows) == 3
    assert np.array_equal(np.concatenate([w.samples for w in windows]), whole)
    for previous, window in zip(windows, windows[1:], strict=False):
        assert window.start_s == pytest.approx(previous.start_s + previous.duration_s)
        # within the last search_s of the nominal window, and in no word
        assert (
            SMALL_WINDOWS.window_s - SMALL_WINDOWS.search_s <= previous.duration_s <= SMALL_WINDOWS.window_s
        )
        assert not [w for w, start, end in words if start - 0.05 <= window.start_s <= end + 0.05]


def test_the_cut_is_the_middle_of_the_quietest_stretch_nearest_the_end():
    samples = np.full(1000, 0.5, np.float32)
    samples[300:400] = 0.0
    assert quietest_cut(samples, quiet_n=50, hop_n=10) == 350 + 25  # latest of the silent starts
    samples[700:760] = 0.0
    assert quietest_cut(samples, quiet_n=50, hop_n=10) == 710 + 25
    assert quietest_cut(np.ones(30, np.float32), quiet_n=50) == 15


def test_a_long_silent_track_is_silent_in_every_window(tmp_path):
    silent = tmp_path / "silent.mp4"
    write_mp4(
        silent, (np.zeros((96, 160, 3), np.uint8) for _ in range(30)), fps=1, audio=np.zeros(30 * 16_000)
    )
    track = open_audio(silent)
    with pytest.raises(NoSpeechAudio, match="silent audio"):
        list(track.windows(Windowing(window_s=8.0, search_s=2.0)))
    assert track.decoded_s == pytest.approx(30.0, abs=0.1)


@pytest.mark.parametrize(
    ("windowing", "message"),
    [
        (Windowing(window_s=0), "window_s=0: must lie in"),
        (Windowing(quiet_s=30), "quiet_s=30: must"),
        (Windowing(window_s=30), "search_s below half of window_s"),
    ],
)
def test_a_wrong_window_setting_is_named(windowing, message):
    with pytest.raises(ValueError, match=message):
        windowing.validated()


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (AsrSettings(engine="kaldi"), "engine 'kaldi' is not one of faster-whisper, whisperx"),
        (AsrSettings(compute_type="int4"), "compute_type 'int4'"),
        (AsrSettings(batch_size=0), "batch_size must be at least 1"),
        (AsrSettings(threads=-1), "threads must be 0"),
        (AsrSettings(model_path="/no/such/model"), "model_path '/no/such/model' is not a CTranslate2"),
    ],
)
def test_a_wrong_setting_is_named(settings, message):
    with pytest.raises(AsrConfigError, match=message):
        build_engine(settings)


def test_the_fingerprint_follows_what_changes_the_output():
    base = AsrSettings()
    assert base.fingerprint("p") == AsrSettings(threads=1, device="cuda").fingerprint("p")
    assert base.fingerprint("p") != base.fingerprint(None)
    assert base.fingerprint("p") != AsrSettings(beam_size=1).fingerprint("p")
    assert base.fingerprint("p") != AsrSettings(engine="whisperx").fingerprint("p")


# --- faster-whisper --------------------------------------------------------------------------


def test_faster_whisper_gives_accurate_words_and_times_offline(narrated):
    path, truth = narrated
    engine = build_engine(AsrSettings())
    done: list[float] = []
    result = engine.transcribe(load_audio(path).samples, done.append)
    score = score_words(truth, [TimedWord(w.word, w.start_s) for w in result.words])
    assert score.wer <= 0.15, [w.word for w in result.words]
    assert statistics.median(score.start_errors_s) <= 0.15
    assert len(score.start_errors_s) >= 0.8 * len(truth)
    # one segment per sentence, words inside their segment, progress reported
    assert len(result.segments) == len(SENTENCES)
    for word in result.words:
        segment = result.segments[word.segment_index]
        assert segment.start_s <= word.start_s <= word.end_s <= segment.end_s
    assert done and done == sorted(done)


def test_transcribing_in_windows_neither_loses_nor_repeats_a_word(narrated_longer):
    path, words = narrated_longer
    engine = build_engine(AsrSettings())
    whole = engine.transcribe(load_audio(path).samples, lambda _: None)
    windows = list(open_audio(path).windows(SMALL_WINDOWS))
    merged = merge_windows([(w.start_s, engine.transcribe(w.samples, lambda _: None)) for w in windows])
    truth = [TimedWord(word, start) for word, start, _end in words]
    score = score_words(truth, [TimedWord(w.word, w.start_s) for w in merged.words])
    assert score.wer <= 0.1, [w.word for w in merged.words]
    assert statistics.median(score.start_errors_s) <= 0.15
    assert abs(len(merged.words) - len(whole.words)) <= 1  # Whisper may hear "Here's" for "Here is"
    # the words on each side of every cut are there once, in order, at their times
    for window in windows[1:]:
        before = max((w for w in words if w[2] <= window.start_s), key=lambda w: w[2])
        after = min((w for w in words if w[1] >= window.start_s), key=lambda w: w[1])
        for word, start, _end in (before, after):
            same = [w for w in merged.words if w.word.strip(".,").lower() == word.lower()]
            assert len([w for w in same if abs(w.start_s - start) < 0.5]) == 1, (word, start)
    starts = [w.start_s for w in merged.words]
    assert starts == sorted(starts)
    assert [s.text for s in merged.segments][-2:] == [s.text for s in whole.segments][-2:]


def test_merged_windows_keep_the_track_clock_and_join_a_sentence_across_a_cut():
    first = AsrResult(
        [AsrSegment(0, 0.5, 1.5, "A lesion."), AsrSegment(1, 2.0, 2.8, "It is")],
        [
            AsrWord("A", 0.5, 0.7, 0.9, 0),
            AsrWord("lesion.", 0.8, 1.5, 0.9, 0),
            AsrWord("It", 2.0, 2.2, 0.9, 1),
            AsrWord("is", 2.3, 2.8, 0.9, 1),
        ],
    )
    second = AsrResult(
        [AsrSegment(0, 0.2, 0.9, "benign."), AsrSegment(1, 1.0, 1.4, "Next.")],
        [AsrWord("benign.", 0.2, 0.9, 0.9, 0), AsrWord("Next.", 1.0, 1.4, 0.9, 1)],
    )
    merged = merge_windows([(0.0, first), (10.0, second)])
    assert [(s.segment_index, s.start_s, s.end_s, s.text) for s in merged.segments] == [
        (0, 0.5, 1.5, "A lesion."),
        (1, 2.0, 10.9, "It is benign."),
        (2, 11.0, 11.4, "Next."),
    ]
    assert [(w.word, w.start_s, w.segment_index) for w in merged.words] == [
        ("A", 0.5, 0),
        ("lesion.", 0.8, 0),
        ("It", 2.0, 1),
        ("is", 2.3, 1),
        ("benign.", 10.2, 1),
        ("Next.", 11.0, 2),
    ]
    assert merge_windows([(0.0, first)]) is first
    assert merge_windows([]) == AsrResult([], [])


def test_sentence_segments_split_at_sentence_punctuation():
    words = [
        AsrWord(w, i, i + 0.5, 0.9, -1) for i, w in enumerate(["A", "lesion.", "Is", "it", "benign?", "Yes"])
    ]
    result = sentence_segments(words)
    assert [s.text for s in result.segments] == ["A lesion.", "Is it benign?", "Yes"]
    assert [w.segment_index for w in result.words] == [0, 0, 1, 1, 1, 2]
    assert result.segments[1].start_s == 2 and result.segments[1].end_s == 4.5


# --- whisperx --------------------------------------------------------------------------------


@pytest.fixture
def empty_torch_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_whisperx_without_an_alignment_model_says_how_to_provide_one(empty_torch_hub):
    with pytest.raises(AlignmentModelUnavailable) as failure:
        build_engine(AsrSettings(engine="whisperx"))
    message = str(failure.value)
    assert TORCHAUDIO_ALIGN_FILE in message and str(empty_torch_hub) in message
    assert "align_model" in message and "faster-whisper" in message
    with pytest.raises(AlignmentModelUnavailable, match="'/no/such/dir' is neither"):
        build_engine(AsrSettings(engine="whisperx", align_model="/no/such/dir"))


def test_alignment_models_are_found_in_a_folder_or_in_torch_hub(tmp_path, empty_torch_hub):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    assert find_alignment_model(str(hf), "en") == (str(hf), None)
    torchaudio_dir = tmp_path / "ta"
    torchaudio_dir.mkdir()
    (torchaudio_dir / TORCHAUDIO_ALIGN_FILE).touch()
    assert find_alignment_model(str(torchaudio_dir), "en") == ("WAV2VEC2_ASR_BASE_960H", str(torchaudio_dir))
    empty_torch_hub.mkdir(parents=True)
    (empty_torch_hub / TORCHAUDIO_ALIGN_FILE).touch()
    assert find_alignment_model("", "en") == ("WAV2VEC2_ASR_BASE_960H", str(empty_torch_hub))


def test_whisperx_transcribes_and_aligns_with_a_local_model(narrated, tmp_path, empty_torch_hub):
    path, truth = narrated
    model = save_tiny_alignment_model(tmp_path / "aligner")
    engine = build_engine(AsrSettings(engine="whisperx", align_model=str(model), threads=1))
    assert isinstance(engine, WhisperXEngine)
    samples = load_audio(path).samples
    done: list[float] = []
    result = engine.transcribe(samples, done.append)
    # The text is Whisper's, as accurate as with faster-whisper; the times come from the random
    # aligner here, so only their consistency is checked.
    score = score_words(truth, [TimedWord(w.word, w.start_s) for w in result.words])
    assert score.wer <= 0.15
    assert result.segments and done[-1] == pytest.approx(samples.size / 16_000)
    starts = [w.start_s for w in result.words]
    assert starts == sorted(starts)
    for word in result.words:
        segment = result.segments[word.segment_index]
        assert segment.start_s - 1e-6 <= word.start_s <= word.end_s <= segment.end_s + 1e-6


# --- vocabulary ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vocabulary() -> MedicalVocabulary:
    return MedicalVocabulary()


@pytest.mark.parametrize(
    ("heard", "meant", "rules"),
    [
        ("The hyper intense lesion.", "The hyperintense lesion.", ["join"]),
        ("An axle image, then the satchel one", "An axial image, then the sagittal one", ["map", "map"]),
        ("Contrast and hand CT", "Contrast-enhanced CT", ["map"]),
        ("a hypodence mass", "a hypodense mass", ["spelling"]),
        ("The parenasal sinuses.", "The paranasal sinuses.", ["spelling"]),
        ("Non contrast CT", "Noncontrast CT", ["join"]),
    ],
)
def test_known_confusions_are_corrected(vocabulary, heard, meant, rules):
    corrected, corrections = vocabulary.correct(heard)
    assert corrected == meant
    assert [c.rule for c in corrections] == rules


@pytest.mark.parametrize(
    "text",
    [
        "He walked in a typical way to the order desk.",  # "a typical" is not "atypical"
        "The hypodense lesion is hyperintense on T2.",
        "Emphasis on the findings, which are benign.",
        "",
    ],
)
def test_english_and_correct_terms_pass_untouched(vocabulary, text):
    assert vocabulary.correct(text) == (text, [])


def test_the_prompt_draws_its_terms_from_the_term_list(vocabulary):
    words = re.findall(r"[A-Za-z][\w-]*", PROMPT)
    medical = [w for w in words if w.lower() not in {"a", "and", "medical", "lecture"}]
    assert len(medical) >= 15
    assert [w for w in medical if w.lower() not in vocabulary.terms] == []


def test_the_term_list_and_confusions_parse(vocabulary):
    assert {"hypodense", "hyperintense", "immunohistochemistry", "sagittal"} <= vocabulary.terms
    assert all(t == t.strip() and t for t in vocabulary.terms)
    assert vocabulary.confusions[("satchel",)] == "sagittal"


# --- scoring ---------------------------------------------------------------------------------


def test_wer_counts_spoken_forms_and_start_errors_come_from_matched_words():
    truth = [TimedWord(w, float(i)) for i, w in enumerate("a two point six centimeters cyst".split())]
    heard = [TimedWord("A", 0.1), TimedWord("2.6", 1.05), TimedWord("cm", 4.0), TimedWord("cyst.", 5.2)]
    score = score_words(truth, heard)
    assert score.errors == 0 and score.reference_words == 6
    assert sorted(round(e, 2) for e in score.start_errors_s) == [0.0, 0.05, 0.1, 0.2, 0.95, 1.95]
    wrong = score_words(truth, [TimedWord("a", 0), TimedWord("cist", 1)])
    assert wrong.errors == 5 and wrong.wer == pytest.approx(5 / 6)


# --- word-start shift ------------------------------------------------------------------------


def _word(start: float, end: float) -> AsrWord:
    return AsrWord("lesion", start, end, 0.9, 0)


def test_shifted_word_times_never_go_below_zero_nor_end_before_they_start():
    shifted = shift_word_times([_word(0.03, 0.05), _word(0.5, 0.9), _word(1.0, 1.0)], -0.1)
    assert [t for w in shifted for t in (w.start_s, w.end_s)] == pytest.approx([0, 0, 0.4, 0.8, 0.9, 0.9])
    assert all(0 <= w.start_s <= w.end_s for w in shifted)
    assert shift_word_times([_word(0.2, 0.3)], 0.25)[0].start_s == pytest.approx(0.45)


class _FakePipeline:
    """Stands in for faster-whisper's batched pipeline: two words as Whisper timed them."""

    def __init__(self):
        self.options: dict = {}

    def transcribe(self, _samples, **options):
        self.options = options
        words = [
            SimpleNamespace(word=" Axial", start=0.04, end=0.40, probability=0.9),
            SimpleNamespace(word=" CT.", start=0.60, end=0.62, probability=0.8),
        ]
        return iter([SimpleNamespace(end=0.62, words=words)]), None


def test_the_engine_decodes_with_the_loop_guards_and_they_count_in_the_fingerprint(monkeypatch):
    engine = FasterWhisperEngine(AsrSettings())
    engine._pipeline = _FakePipeline()
    engine.transcribe(np.zeros(SAMPLE_RATE, np.float32), lambda _: None)
    assert engine._pipeline.options["no_repeat_ngram_size"] >= 2
    before = AsrSettings().fingerprint("p")
    monkeypatch.setitem(DECODING_OPTIONS, "no_repeat_ngram_size", 0)
    assert AsrSettings().fingerprint("p") != before


def test_a_split_off_decimal_tail_joins_its_number():
    heard = [
        AsrWord("measures", 0.0, 0.4, 0.9, -1),
        AsrWord("2", 0.5, 0.6, 0.8, -1),
        AsrWord(".6", 0.6, 0.7, 0.7, -1),
        AsrWord("cm.", 0.8, 1.0, 0.9, -1),
        AsrWord("Level", 1.2, 1.4, 0.9, -1),
        AsrWord("L2.", 1.5, 1.7, 0.9, -1),
        AsrWord(".5", 1.8, 1.9, 0.9, -1),  # not a tail: the number before it ended its sentence
    ]
    joined = joined_decimals(heard)
    assert [w.word for w in joined] == ["measures", "2.6", "cm.", "Level", "L2.", ".5"]
    assert (joined[1].start_s, joined[1].end_s, joined[1].probability) == (0.5, 0.7, 0.7)


@pytest.mark.parametrize(
    ("setting", "shift"), [(None, CHECKPOINTS[DEFAULT_CHECKPOINT].word_start_shift_s), (-0.3, -0.3)]
)
def test_faster_whisper_word_times_carry_the_word_start_shift(setting, shift):
    engine = FasterWhisperEngine(AsrSettings(word_start_shift_s=setting))
    engine._pipeline = _FakePipeline()
    result = engine.transcribe(np.zeros(SAMPLE_RATE, np.float32), lambda _: None)
    expected = [
        (max(0.0, 0.04 + shift), max(0.0, 0.40 + shift)),
        (max(0.0, 0.60 + shift), max(0.0, 0.62 + shift)),
    ]
    assert [t for w in result.words for t in (w.start_s, w.end_s)] == pytest.approx(
        [t for pair in expected for t in pair]
    )
    assert result.segments[0].start_s == pytest.approx(expected[0][0])
    assert all(0 <= w.start_s <= w.end_s for w in result.words)


def test_the_shift_defaults_to_the_checkpoints_and_counts_in_the_fingerprint():
    assert AsrSettings().word_shift_s == CHECKPOINTS[DEFAULT_CHECKPOINT].word_start_shift_s
    assert AsrSettings(engine="whisperx").word_shift_s == 0.0
    assert AsrSettings(word_start_shift_s=0.0).word_shift_s == 0.0
    assert AsrSettings().fingerprint("p") != AsrSettings(word_start_shift_s=0.0).fingerprint("p")
    with pytest.raises(AsrConfigError, match="word_start_shift_s must lie between -1.0 and 1.0"):
        AsrSettings(word_start_shift_s=2.5).validated()


def test_the_shift_brings_real_word_starts_closer_to_the_narrators(narrated):
    path, truth = narrated
    samples = load_audio(path).samples
    unshifted = build_engine(AsrSettings(word_start_shift_s=0.0)).transcribe(samples, lambda _: None)
    shifted = build_engine(AsrSettings()).transcribe(samples, lambda _: None)
    lag = statistics.median(
        signed_start_errors(truth, [TimedWord(w.word, w.start_s) for w in unshifted.words])
    )
    after = signed_start_errors(truth, [TimedWord(w.word, w.start_s) for w in shifted.words])
    assert abs(lag) > 0.02  # Whisper's attention times are off on this voice
    assert abs(statistics.median(after)) < abs(lag)
    assert all(0 <= w.start_s <= w.end_s for w in shifted.words)


def test_signed_start_errors_are_heard_minus_true():
    truth = [TimedWord("a", 1.0), TimedWord("cyst", 1.5)]
    heard = [TimedWord("a", 1.1), TimedWord("cyst", 1.4), TimedWord("here", 2.0)]
    assert signed_start_errors(truth, heard) == pytest.approx([0.1, -0.1])


# --- packaged checkpoints --------------------------------------------------------------------


def _fake_checkpoint(root: Path, monkeypatch, halves: list[bytes], expected: bytes | None = None) -> str:
    """A two-part checkpoint in importable fake packages; returns its name."""
    parts = []
    for k, data in enumerate(halves, 1):
        module = f"fake_whisper_part{k}_{root.parent.name}"
        folder = root / module / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("")
        (folder / f"model.bin.part{k}").write_bytes(data)
        parts.append(Part(f"fake-whisper-part{k}==1.0", module, f"data/model.bin.part{k}", len(data)))
    for name in MODEL_FILES:
        (root / parts[0].module / "data" / name).write_text("{}")
    monkeypatch.syspath_prepend(str(root))
    digest = hashlib.sha256(expected if expected is not None else b"".join(halves)).hexdigest()
    monkeypatch.setitem(CHECKPOINTS, "fake", PackagedCheckpoint("fake", tuple(parts), digest, -0.05))
    return "fake"


def test_a_split_checkpoint_is_joined_once_into_the_cache(tmp_path, monkeypatch):
    name = _fake_checkpoint(tmp_path / "pkgs", monkeypatch, [b"first half ", b"second half"])
    folder = checkpoint_folder(name, tmp_path / "cache")
    assert (folder / "model.bin").read_bytes() == b"first half second half"
    assert all((folder / f).is_file() for f in MODEL_FILES)
    written = (folder / "model.bin").stat().st_mtime_ns
    assert checkpoint_folder(name, tmp_path / "cache") == folder
    assert (folder / "model.bin").stat().st_mtime_ns == written
    assert [p.name for p in folder.iterdir() if "partial" in p.name] == []


def test_a_missing_part_names_the_package_to_install(tmp_path, monkeypatch):
    name = _fake_checkpoint(tmp_path / "pkgs", monkeypatch, [b"aaaa", b"bbbb"])
    missing = replace(CHECKPOINTS[name].parts[1], module="no_such_whisper_part")
    monkeypatch.setitem(
        CHECKPOINTS, name, replace(CHECKPOINTS[name], parts=(CHECKPOINTS[name].parts[0], missing))
    )
    with pytest.raises(
        CheckpointError, match="needs the package fake-whisper-part2==1.0, which is not installed"
    ):
        checkpoint_folder(name, tmp_path / "cache")


def test_a_truncated_part_names_its_package(tmp_path, monkeypatch):
    name = _fake_checkpoint(tmp_path / "pkgs", monkeypatch, [b"aaaa", b"bbbb"])
    part = CHECKPOINTS[name].parts[1]
    (tmp_path / "pkgs" / part.module / part.file).write_bytes(b"bb")
    with pytest.raises(CheckpointError, match=r"has 2 bytes, not 4; .*reinstall fake-whisper-part2==1.0"):
        checkpoint_folder(name, tmp_path / "cache")


def test_corrupt_parts_fail_the_digest_and_leave_no_model(tmp_path, monkeypatch):
    name = _fake_checkpoint(tmp_path / "pkgs", monkeypatch, [b"aaaa", b"bXbb"], expected=b"aaaabbbb")
    with pytest.raises(CheckpointError, match="do not match the expected model"):
        checkpoint_folder(name, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*/model.bin*"))
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(AsrConfigError, match="model_path 'fake': Whisper fake: the joined parts"):
        AsrSettings(model_path=name).validated()


def test_an_unknown_checkpoint_lists_the_known_ones():
    with pytest.raises(
        CheckpointError, match="no packaged Whisper checkpoint 'huge'; choose one of tiny.en, base"
    ):
        checkpoint_folder("huge")
