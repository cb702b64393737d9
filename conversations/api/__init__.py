"""The REST API's conversation endpoints (spec/api.md): sending messages, reading the log."""
