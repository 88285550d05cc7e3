"""Make ``import bench`` work when pytest is run on bench/ explicitly (``pytest bench/test_metrics.py``).

pytest.ini uses ``--import-mode=importlib``, which does not put the repository root on sys.path.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
