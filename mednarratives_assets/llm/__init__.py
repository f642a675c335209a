"""Shared language-model helpers: the pip-shipped SmolLM2 model, a local chat model on it, an
OpenAI-compatible server around that model, and the versioned prompts."""
