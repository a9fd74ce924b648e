"""The scheduled spike and drop alerts function (EventBridge, every minute)."""
