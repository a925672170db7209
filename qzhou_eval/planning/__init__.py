"""What a run will cost before it starts: texts, tokens, padding, FLOPs, time and cache size per task."""
