"""``python -m gristmill.apps.generals``."""

import sys

from gristmill.apps.generals.cli import main

if __name__ == "__main__":
    sys.exit(main())
