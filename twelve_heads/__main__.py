"""`python -m twelve_heads` is the `twelve-heads` command."""

import sys

from .cli import main

sys.exit(main())
