"""The beacon function: page views, heartbeats and leaves (design §6), and community registration."""
