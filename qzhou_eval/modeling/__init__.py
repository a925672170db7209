"""Model side: loading checkpoints, attention changes, pooling and output heads."""
