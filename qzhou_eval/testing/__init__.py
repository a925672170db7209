"""Servers for tests and offline rehearsals, kept apart from the product: a ``vllm serve`` process on the
loopback interface (vllm_server.py) and a scriptable OpenAI-compatible chat endpoint (loopback_chat.py).
Nothing in the package imports this module."""
