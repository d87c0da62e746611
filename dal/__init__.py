"""Storage: a small backend interface (``dal.base``) and its implementations. Knows nothing of algorithms."""

from dal.base import Backend, ResultRow, StoredPnl, open_backend

__all__ = ["Backend", "ResultRow", "StoredPnl", "open_backend"]
