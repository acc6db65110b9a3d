"""Fail early, in one line, when the Python that builds the venv is too old."""

import sys

if sys.version_info < (3, 11):
    sys.exit(
        f"Flotilla needs Python >= 3.11, this is {sys.version.split()[0]}: "
        "run `make PYTHON=python3.11 ...`"
    )
