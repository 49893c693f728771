"""`python -m dcgan ...` is the same as `dcgan ...` (and is what torchrun launches)."""

import sys

from .cli import main

sys.exit(main())
