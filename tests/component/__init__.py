"""Component tests: each function or adapter in-process against a real Redis and moto."""
