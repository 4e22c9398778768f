"""`python -m tfcyclegan.cli ...`, as `python -m tfcyclegan ...`."""

import sys

from tfcyclegan.cli import main

sys.exit(main())
