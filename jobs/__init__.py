"""CDP core: PySpark jobs that resolve scattered customer records into one golden profile per person."""

__version__ = "0.1.0"
