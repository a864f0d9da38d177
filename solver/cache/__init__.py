"""The persistent store: the SQLite cache index, the content store, and content hashes."""
