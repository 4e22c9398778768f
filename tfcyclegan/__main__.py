"""`python -m tfcyclegan ...` runs the `tfcyclegan` command."""

import sys

from tfcyclegan.cli import main

sys.exit(main())
