"""`python -m derain_cli` runs the `derain` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
