"""The ``[broker]`` table of the server's config and the ``[worker]`` table of a worker's.

Secrets (the broker URL with its password, the worker token) may come from the
environment instead of the file: ``HWUT_BROKER_URL``, ``HWUT_WORKER_TOKEN``.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError

#: The shortest worker token accepted: it is the only thing between the network and the
#: right to write job results.
MIN_TOKEN_CHARS = 16


def _number(table: Mapping[str, Any], key: str, default: float, low: float, high: float,
            where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"[{where}] {key}: a number from {low:g} to {high:g}, not {value!r}")
    return float(value)


def _secret(table: Mapping[str, Any], key: str, env: str, environ: Mapping[str, str],
            where: str) -> str:
    value = environ.get(env) or table.get(key)
    if not isinstance(value, str) or len(value) < MIN_TOKEN_CHARS:
        raise ConfigError(f"[{where}] {key} (or {env}): a secret of at least {MIN_TOKEN_CHARS} "
                          "characters is needed")
    return value


def _url(table: Mapping[str, Any], environ: Mapping[str, str], where: str,
         override: str | None = None) -> str:
    url = override or environ.get("HWUT_BROKER_URL") or table.get("url")
    if not isinstance(url, str) or not url.startswith(("amqp://", "amqps://", "pyamqp://")):
        raise ConfigError(f"[{where}] url (or HWUT_BROKER_URL, --broker): an amqp:// URL is "
                          f"needed, not {url!r}")
    return url


@dataclass(frozen=True)
class BrokerSettings:
    """The server's side: where to publish, who may report, when a job is lost."""

    url: str
    worker_token: str
    #: Hosts a job may be taken up by (a lost worker's job runs again) before it is ERROR.
    max_attempts: int = 3
    #: A running remote job with no report for this long has lost its worker.
    lost_after_seconds: float = 30.0
    #: A worker host not heard from for this long shows as stale; its instances take no
    #: new jobs from the dispatcher (what is queued waits for live hosts).
    host_stale_seconds: float = 10.0
    #: Jobs published per live remote instance (one runs, the rest wait in the queue).
    queued_per_instance: int = 2
    #: The broker's consumer timeout (RabbitMQ's ``consumer_timeout`` in rabbitmq.conf,
    #: there in milliseconds; its default is 30 minutes): a consumer that holds an
    #: unacknowledged message longer has its channel closed and the message goes to
    #: another host while the job still runs. The server refuses to start when its
    #: longest job could hold a message longer (see :func:`longest_hold_s`).
    consumer_timeout_seconds: float = 1800.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any],
                   environ: Mapping[str, str] | None = None) -> BrokerSettings:
        environ = os.environ if environ is None else environ
        known = {"url", "worker_token", "max_attempts", "lost_after_seconds",
                 "host_stale_seconds", "queued_per_instance", "consumer_timeout_seconds"}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"[broker]: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(url=_url(table, environ, "broker"),
                   worker_token=_secret(table, "worker_token", "HWUT_WORKER_TOKEN", environ,
                                        "broker"),
                   max_attempts=int(_number(table, "max_attempts", 3, 1, 20, "broker")),
                   lost_after_seconds=_number(table, "lost_after_seconds", 30.0, 1, 3600,
                                              "broker"),
                   host_stale_seconds=_number(table, "host_stale_seconds", 10.0, 1, 3600,
                                              "broker"),
                   queued_per_instance=int(_number(table, "queued_per_instance", 2, 1, 100,
                                                   "broker")),
                   consumer_timeout_seconds=_number(table, "consumer_timeout_seconds", 1800.0,
                                                    60, 30 * 86400, "broker"))


def longest_hold_s(wall_budget_s: float, give_up_s: float = 30.0,
                   backend_extra_s: float = 0.0) -> float:
    """How long a worker host may hold a job's message unacknowledged (late
    acknowledgement): the run's wall budget (its time limit, CPU budget at the hang
    factor, hang grace), the backend's allowance, and the exchanges with the server
    (opening the attempt and delivering the outcome, each given up after
    ``give_up_s``) with a few seconds of slack. The server checks its longest job with
    the defaults when it starts; a host checks each job with its own settings and
    backend before it runs it."""
    return wall_budget_s + backend_extra_s + 2 * give_up_s + 5.0


@dataclass(frozen=True)
class WorkerSettings:
    """A worker host's side: its broker, the server it reports to, its name."""

    broker_url: str
    server_url: str
    token: str
    host: str
    #: AMQP heartbeat: how soon the broker notices this host is gone (about twice it) and
    #: hands its unacknowledged job to another host.
    heartbeat_seconds: float = 10.0
    #: How often a running job reports (log bytes, or nothing: it also asks "canceled?").
    report_seconds: float = 0.25
    #: How often the host tells the server it is alive, with its instances' state.
    host_heartbeat_seconds: float = 2.0
    #: A job whose reports cannot reach the server for this long is stopped (the server
    #: counts it lost and another host takes it).
    give_up_seconds: float = 30.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any], broker: str | None = None,
                   environ: Mapping[str, str] | None = None) -> WorkerSettings:
        environ = os.environ if environ is None else environ
        known = {"broker", "server", "token", "host", "heartbeat_seconds", "report_seconds",
                 "host_heartbeat_seconds", "give_up_seconds"}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"[worker]: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        server = table.get("server")
        if not isinstance(server, str) or not server.startswith(("http://", "https://")):
            raise ConfigError(f"[worker] server: the API server's URL, not {server!r}")
        host = table.get("host") or socket.gethostname()
        if not isinstance(host, str) or not 0 < len(host) <= 64 or "/" in host:
            raise ConfigError(f"[worker] host: a name up to 64 characters, not {host!r}")
        return cls(broker_url=_url({"url": table.get("broker")}, environ, "worker", broker),
                   server_url=server.rstrip("/"),
                   token=_secret(table, "token", "HWUT_WORKER_TOKEN", environ, "worker"),
                   host=host,
                   heartbeat_seconds=_number(table, "heartbeat_seconds", 10.0, 1, 600, "worker"),
                   report_seconds=_number(table, "report_seconds", 0.25, 0.05, 5, "worker"),
                   host_heartbeat_seconds=_number(table, "host_heartbeat_seconds", 2.0, 0.2, 60,
                                                  "worker"),
                   give_up_seconds=_number(table, "give_up_seconds", 30.0, 1, 3600, "worker"))
