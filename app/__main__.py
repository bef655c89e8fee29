"""``python -m app`` does what the ``bufferscope`` command does."""

import sys

from .cli import main

sys.exit(main())
