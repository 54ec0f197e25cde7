"""``python -m zoo`` is the ``zoo`` command (also what ``torchrun -m zoo`` runs)."""

import os
import sys

from zoo.cli import main


def _run_rank() -> None:
    """One rank of a distributed run: leave with ``os._exit`` once everything is flushed.

    Every file of the run is written and closed, and the process group destroyed, before this
    returns; what is left are C++ static destructors of gloo/the TCP store, which now and then
    abort a rank at exit ("terminate called without an active exception") and make torchrun
    report a finished job as failed. Skipping them is what the rank needs; nothing is lost.
    """
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        if not isinstance(exit.code, (int, type(None))):
            print(exit.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    _run_rank()
else:
    main()
