"""``python -m console``: the same program as the ``probe-console`` script."""

import sys

from console.cli import main

if __name__ == "__main__":
    sys.exit(main())
