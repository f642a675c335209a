"""Narrated test videos with known word times, and a tiny wav2vec2 model for whisperx's aligner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mednarratives_assets.evaluation.transcript_scores import TimedWord
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.synthetic.speech import PiperNarrator

PAUSE_S = 0.4


def write_narrated_video(
    path: Path, narrator: PiperNarrator, sentences: list[str], size: tuple[int, int] = (160, 96), fps: int = 5
) -> list[TimedWord]:
    """An mp4 of a still frame with the sentences spoken; returns each word with its start time."""
    rate = narrator.sample_rate
    pieces, truth, offset = [np.zeros(int(PAUSE_S * rate), np.float32)], [], PAUSE_S
    for sentence in sentences:
        utterance = narrator.say(sentence)
        truth += [TimedWord(w.word, offset + w.start_s) for w in utterance.words]
        pieces += [utterance.audio, np.zeros(int(PAUSE_S * rate), np.float32)]
        offset += (utterance.audio.size + int(PAUSE_S * rate)) / rate
    audio = np.concatenate(pieces)
    n_frames = max(1, round(audio.size / rate * fps))
    frame = np.full((size[1], size[0], 3), 40, np.uint8)
    write_mp4(path, (frame for _ in range(n_frames)), fps=fps, audio=audio, sample_rate=rate)
    return truth


def save_tiny_alignment_model(folder: Path) -> Path:
    """A randomly initialised character CTC wav2vec2 in Hugging Face format (about 200 kB).

    It exercises whisperx's alignment code offline; its word times carry no meaning.
    """
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    labels = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONISRHDLUMCWFGYPBVK'XJQZ"]
    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(labels)}))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
    )
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=len(labels),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    return folder
