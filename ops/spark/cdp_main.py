"""spark-submit entry point: ``spark-submit [options] ops/spark/cdp_main.py <cdp verb> [args]``.

spark-submit needs a Python file as its application; this one only hands the arguments to the
``cdp`` command (jobs.cli.main), which picks up the session spark-submit created. The ``jobs``
package comes from the wheel (``--py-files dist/cdp_jobs-*.whl`` or installed in the environment).
"""

import sys

from jobs.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
