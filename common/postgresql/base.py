"""Django's PostgreSQL backend with a health check that costs no round trip.

Django's check (CONN_HEALTH_CHECKS) sends `SELECT 1` before the first query of every
request and every Celery task. An idle connection needs no query to tell: a server that
restarts or terminates the session sends its goodbye and closes the socket, so the
socket turns readable, while a healthy idle connection has nothing to read.
"""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by Django's BaseDatabaseWrapper; django-stubs does not declare them.
    health_check_enabled: bool
    health_check_done: bool

    def close_if_health_check_failed(self) -> None:
        due = self.connection is not None and self.health_check_enabled
        if not due or self.health_check_done or self.pool:  # a pool checks its own
            return
        if not self._idle_and_open():
            self.close()
        self.health_check_done = True

    def _idle_and_open(self) -> bool:
        if self.connection.broken or self.connection.closed:
            return False
        poller = select.poll()
        poller.register(self.connection.fileno(), select.POLLIN)
        return not poller.poll(0)
