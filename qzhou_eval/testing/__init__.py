"""Servers for tests and offline rehearsals, kept apart from the product: one scriptable loopback JSON server
(loopback_server.py) that the synthesis rehearsal's chat endpoint (loopback_chat.py) and the tests' embeddings
stub are written on, and a ``vllm serve`` process on the loopback interface (vllm_server.py). Nothing in the
package imports this module."""
