"""crawlproc: the processing core. Plain functions and small classes over one document or one file.

This package never imports ray: orchestration lives in `pipelines/`.
"""

__version__ = "0.1.0"
