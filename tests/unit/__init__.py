"""Pure rule tests: no Redis, no AWS, no network."""
