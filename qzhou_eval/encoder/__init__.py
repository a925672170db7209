"""Encoding: input preparation, batching, the forward pass and the mteb adapter."""
