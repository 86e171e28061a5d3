"""The Celery app both sides build: the same queues, the settings that make a lost
host's job come back (late acknowledgement, reject on worker loss, prefetch 1).

Celery is imported here only, and only when a ``[broker]`` table or ``hwut worker``
asks for it, so the embedded default needs no Celery.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..config import ConfigError
from .protocol import queue_name

MISSING = ("Celery is not installed: the broker needs the `broker` extra "
           "(pip install 'hwut[broker]')")


def make_app(broker_url: str, boards: Iterable[str], heartbeat_s: float = 10.0,
             name: str = "hwut") -> Any:
    """A Celery app for ``broker_url`` that knows one durable queue per board."""
    try:
        from celery import Celery
        from kombu import Exchange, Queue
    except ImportError:
        raise ConfigError(MISSING) from None
    app = Celery(name, broker=broker_url, set_as_current=False)
    queues = [Queue(queue_name(b), Exchange(queue_name(b), type="direct", durable=True),
                    routing_key=queue_name(b), durable=True) for b in sorted(set(boards))]
    app.conf.update(
        task_queues=queues,
        task_create_missing_queues=False,
        # a job is acknowledged when it has ended (and reported): a host that dies before
        # leaves it unacknowledged, and the broker hands it to another consumer
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_delivery_mode="persistent",
        # the broker confirms each publish: a job the server counts as sent is in the queue
        broker_transport_options={"confirm_publish": True},
        broker_heartbeat=heartbeat_s,
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_connection_timeout=5.0,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2,
                                   "interval_step": 0.5, "interval_max": 1.0},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_pool_limit=4,
    )
    return app
