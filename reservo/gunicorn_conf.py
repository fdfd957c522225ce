"""gunicorn configuration for `make serve`; the demo and the benchmark serve the same way."""

import logging
import logging.handlers
import multiprocessing
import os
import shutil
import tempfile
from typing import Any

from gunicorn.glogging import Logger

from reservo.logs import LINE_FORMAT, IsoFormatter

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Measured with `make bench` (bench/README.md): sync workers, two per core. gthread keeps
# connections alive and raises the no-database floors, but on the hot resource it served
# no more bookings and doubled their p99 (one worker's queued connections wait behind its
# lock wait; sync workers share one accept queue). More workers or threads only lengthen
# the queue on the hot row lock.
workers = int(os.environ.get("RESERVO_WEB_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = os.environ.get("RESERVO_WORKER_CLASS", "sync")
threads = int(os.environ.get("RESERVO_WEB_THREADS", "1"))
# A request that outlives every database bound (statement 5 s) is a hung worker: restart it.
timeout = int(os.environ.get("RESERVO_REQUEST_TIMEOUT_S", "30"))
# SIGTERM: stop accepting, let in-flight requests finish, then exit.
graceful_timeout = int(os.environ.get("RESERVO_GRACEFUL_TIMEOUT_S", "30"))
keepalive = 5
max_requests = int(os.environ.get("RESERVO_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("RESERVO_ACCESS_LOG") or None
# The path without its query string, and no Referer: a customer's manage link carries its
# secret token in the query string (its first visit trades it for the session and redirects
# to the bare path), and that URL would otherwise be logged, then again as the next page's
# Referer. The request id ties a line to the application's own log. No time: the line
# starts with it, as every line does (IsoLogger).
access_log_format = (
    '%(h)s %(l)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s" %({x-request-id}o)s'
)
errorlog = "-"
loglevel = os.environ.get("RESERVO_LOG_LEVEL", "info").lower()


class IsoLogger(Logger):
    """gunicorn's own lines (the master's, the workers', the access log) in the application's
    format (reservo/logs.py): the time in ISO 8601 with its offset, the level, the logger.

    gunicorn's settings keep their meaning (errorlog, accesslog: a file or "-"; the access
    log stays off unless asked for); only the format changes. Syslog keeps its own, as
    syslog stamps the time itself."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not isinstance(handler, logging.handlers.SysLogHandler):
                    handler.setFormatter(IsoFormatter(LINE_FORMAT))


logger_class = IsoLogger
preload_app = False
# No shared control socket in the home directory: several instances run side by side.
control_socket_disable = True

# /metrics must add up every worker, not show whichever answered: prometheus_client's
# multiprocess mode, in a folder of this server's own (workers import the app after fork,
# so they see the variable). The caller may give its own folder.
_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="reservo-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
