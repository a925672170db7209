"""LLM-API training-data synthesis (SPEC 3): paraphrase, augmentation, hard-negative generation, with output checks."""
