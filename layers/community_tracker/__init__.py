"""Shared layer of the community visitor tracker: domain, Redis tracker, stores, identity, settings."""
