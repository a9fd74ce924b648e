"""The stats API frontends call: live counts, divisions, peaks, history (design §6)."""
