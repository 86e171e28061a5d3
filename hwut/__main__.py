"""``python -m hwut`` is the ``hwut`` command."""
from .cli import main

main()
