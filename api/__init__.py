"""The status API (FastAPI) and the views it shares with ``heavyopt status``."""
