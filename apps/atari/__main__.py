"""``python -m gristmill.apps.atari``."""

import sys

from gristmill.apps.atari.cli import main

if __name__ == "__main__":
    sys.exit(main())
