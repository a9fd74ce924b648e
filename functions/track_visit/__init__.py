"""The beacon function: page views, heartbeats and leaves (README, "Beacon API"), and community registration."""
