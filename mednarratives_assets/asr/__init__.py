"""Offline speech recognition for the `transcripts` stage: audio, engines, medical vocabulary, scoring."""
