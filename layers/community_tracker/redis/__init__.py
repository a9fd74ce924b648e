"""Redis adapter: the live state of every community, kept by Lua scripts (one per job)."""
