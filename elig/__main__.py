"""``python -m elig``: the same as the ``elig`` command."""

from elig.commands.cli import main

main()
