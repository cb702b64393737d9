"""What reading a timestamp costs the product's database connections, against Django's
own way (common/postgresql/base.py, UtcLoader).

Reads --rows timestamptz values through the product's connection (the worker reads
dozens a message: claims, the admission line; an export reads three a row), then the
same rows through a cursor given Django's own loader, alternating, and prints the
microseconds a value of each and their ratio. Needs no data: the values are generated.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/timestamps.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_secrets  # noqa: E402

QUERY = "SELECT now() + make_interval(secs => g) FROM generate_series(1, %s) g"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--target", type=float, default=4.0, help="at least this much faster")
    args = parser.parse_args()
    bench_secrets()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL server")
    import django

    django.setup()
    from django.db import connection
    from django.db.backends.postgresql.psycopg_any import register_tzloader

    timings: dict[str, list[float]] = {"product": [], "Django": []}
    for _ in range(args.repeat):
        for way in timings:
            with connection.cursor() as cursor:
                if way == "Django":
                    register_tzloader(connection.timezone, cursor.cursor)
                started = time.perf_counter()
                cursor.execute(QUERY, [args.rows])
                values = [value for (value,) in cursor.fetchall()]
                timings[way].append((time.perf_counter() - started) / args.rows * 1e6)
            assert values[0].utcoffset().total_seconds() == 0, values[0]
    medians = {way: statistics.median(spent) for way, spent in timings.items()}
    ratio = medians["Django"] / medians["product"]
    for way, median in medians.items():
        print(f"{way:8s} {median:.2f} µs a timestamp (query and fetch, median of {args.repeat})")
    verdict = "OK" if ratio >= args.target else "MISSED"
    print(
        f"the product reads timestamps {ratio:.1f}x as fast (target >= {args.target:g}x) {verdict}"
    )
    sys.exit(0 if ratio >= args.target else 1)


if __name__ == "__main__":
    main()
