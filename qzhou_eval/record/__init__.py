"""The record format and its readers: model-free, so reports and comparisons never load torch or a model."""
