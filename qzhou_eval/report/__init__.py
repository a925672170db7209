"""Reports on finished runs: leaderboard tables, charts, regression gates and submissions."""
