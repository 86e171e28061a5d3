"""Scale-out: board instances on other hosts, reached through Celery and RabbitMQ.

The server (:mod:`.dispatcher`) publishes each job to the queue of its board type
(``hwut.board.<board>``); a worker host (:mod:`.worker`, ``hwut worker``) consumes the
queues of the boards it serves, one job at a time per instance (prefetch 1, late
acknowledgement), and runs each job in its own process through :mod:`hwut.runner`, as
the server's own scheduler does. The worker reports back over the server's HTTP API
(:mod:`.protocol`); the server records what it is told, so it stays the only writer of
its store.

Nothing here imports Celery at module level: the embedded default (no ``[broker]``
table) needs neither Celery nor a broker, and the package installs without them (the
``broker`` extra brings Celery).
"""
