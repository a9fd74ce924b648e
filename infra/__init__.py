"""What provisions and runs the tracker: local runner, table creation, seed data, CLIs."""
