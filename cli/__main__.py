"""``python -m cli``: the ``heavyopt`` command."""

from cli.main import main

main()
