"""Decide once: a request (flags, ``load_encoder`` keywords, a plan) becomes one immutable :class:`RunSpec`.

Torch-free (torch is imported only to ask whether CUDA is present when nothing else says). Every entry
point resolves exactly once and everything after asks the spec: the runner, the resume check, the
encoder builders, the planner and the ``instructions`` command.
"""
