"""The demo corpus generator: narrated lecture videos with exact ground truth (not a pipeline stage)."""
