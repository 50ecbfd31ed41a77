"""The domain: ds01's nouns, its configuration, limits, state store, audit log, Docker and GPU access."""
