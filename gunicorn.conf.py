"""gunicorn's settings, read from the working directory by every way of starting the web
process: the Dockerfile, docker-compose, bin/run and the benchmarks.

Threads rather than sync workers: a callback mostly waits on the database and Redis, the
WeCom robot polls each live answer about once a second, and a thread keeps the platform's
connection alive between callbacks instead of reconnecting for each.
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "8"))
accesslog = "-"
