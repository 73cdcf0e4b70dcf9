"""``python -m nncore``: the nncore command line (see nncore.cli)."""
import sys

from .cli import main

sys.exit(main())
