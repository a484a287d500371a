"""``python -m gristmill.apps.doom``."""

import sys

from gristmill.apps.doom.cli import main

if __name__ == "__main__":
    sys.exit(main())
