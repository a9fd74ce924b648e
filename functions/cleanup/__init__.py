"""The scheduled cleanup function (EventBridge, every minute)."""
