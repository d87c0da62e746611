"""The ``heavyopt`` command line: the top layer, composing every other (docs/architecture.md)."""
