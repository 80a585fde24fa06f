"""Where tuichat keeps things on disk: the cache, the outbox, write-ahead-log upkeep."""
