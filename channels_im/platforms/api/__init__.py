"""The REST API as a platform (platform key `api`): integrations' messages travel the
same path as chat messages, so limits, logs and usage count them."""

from .adapter import ApiAdapter

__all__ = ["ApiAdapter"]
