"""Result files -> leaderboard-exact scores. Reads JSON only: no model code, no GPU."""
