"""``python -m jobs`` is the ``cdp`` command (also what spark-submit runs)."""

import sys

from jobs.cli import main

sys.exit(main())
