"""Plumbing that more than one app uses and that belongs to none of them.

`assistant/` keeps to wiring (settings, URLs, the Celery app); the outbound HTTP session
serves both the model client (conversations) and the platform clients (channels_im), and
the PostgreSQL backend serves every app's queries, so they live here.
"""
