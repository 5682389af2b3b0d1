"""`python -m neuralcomp.cli` runs the command line."""

import sys

from neuralcomp.cli import main

sys.exit(main())
