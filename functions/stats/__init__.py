"""The stats API frontends call: live counts, divisions, peaks, history (README, "Stats API")."""
