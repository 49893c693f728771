"""`python -m dcgan.cli ...` is the same as `dcgan ...` (as it was when the command line was one module)."""

import sys

from . import main

sys.exit(main())
