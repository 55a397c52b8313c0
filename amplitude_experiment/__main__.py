"""``python -m amplitude_experiment``: the command line (see :mod:`amplitude_experiment.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m amplitude_experiment"))
