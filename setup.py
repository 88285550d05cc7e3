from setuptools import find_packages, setup

# Versions that install together without Maven. PySpark and delta-spark are the `spark` extra, not
# requirements: on a cluster (a Databricks python_wheel_task, spark-submit) they come from the
# runtime, and installing the wheel must not put another PySpark over it. `make install` adds them.
INSTALL_REQUIRES = [
    "deltalake==1.6.6",
    "graphframes-py==0.12.3",
    "mlflow==3.17.2",
    "pyyaml==6.0.4",
    "pydantic==2.14.4",  # the config loader validates field by field (pydantic-core validate_assignment)
    "networkx>=3.2,<4",  # jobs/match/guard.py (bridge detection)
    "pandas>=2.2,<3",
    "pyarrow>=16,<26",
    "numpy>=1.26,<3",
    "scipy>=1.11,<2",
    "phonenumbers==9.0.43",
    "rapidfuzz==3.14.6",
    "pyahocorasick==2.3.1",  # jobs/privacy/scan.py: all of an erasure's values in one pass over a file
    "zstandard==0.25.0",  # jobs/privacy/scan.py: zstd-compressed files are decompressed before the search
    "faker==40.54.0",
    "matplotlib>=3.8,<4",
]

EXTRAS = {
    # pyspark 4.2.0 is the newest delta-spark 4.4.1 accepts.
    "spark": [
        "pyspark==4.2.0",
        "delta-spark==4.4.1",
    ],
    # What the tests import (tests/test_packaging.py checks it), pinned to the versions tested together.
    "test": [
        "pytest==9.2.0",
        "chispa==0.12.0",
        "jinja2==3.1.6",  # tests/test_ops.py renders the Airflow commands as Airflow would
        "nbclient==0.11.0",
        "nbformat==5.11.1",
        "jupyter_client==8.10.0",  # tests/test_notebooks.py starts the kernels itself
        "ipykernel==7.4.0",
        "psycopg[binary]==3.3.9",
        "packaging==26.4",  # tests/test_packaging.py reads these requirements
    ],
    "bench": [
        "splink==5.0.0",
        "duckdb>=1.1",
        "recordlinkage==0.16",
        "psutil>=5.9",
    ],
}

setup(
    name="cdp-jobs",
    version="0.1.0",
    description="Customer data platform core: identity resolution, golden profiles and GDPR erasure on PySpark",
    packages=find_packages(include=["jobs", "jobs.*"]),
    package_data={"jobs": ["py.typed", "common/jvm/cdp/udf/*.java"]},
    python_requires=">=3.11,<3.13",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["cdp=jobs.cli:main"]},
)
