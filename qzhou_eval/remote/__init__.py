"""Talking to OpenAI-compatible servers: retries (shared by synthesis and the endpoint backend), the
embeddings client, and the check that a served model is the local checkpoint."""
