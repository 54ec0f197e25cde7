"""``python -m zoo`` is the ``zoo`` command (also what ``torchrun -m zoo`` runs)."""

from zoo.cli import main

main()
