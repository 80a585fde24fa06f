"""Talking to the homeserver: nio's client, plain JSON requests, media,
the errors a request can raise, fast JSON for the hot paths."""
