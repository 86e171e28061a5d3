"""Imported by the job processes' fork server only (it is in :func:`job_context`'s
preload list): imports the server's main script there once, as multiprocessing means
to, so that each job process does not import it again.

Why: a forkserver child re-runs the parent's main script (as ``__mp_main__``) unless
the fork server already holds it, and CPython 3.11 to 3.13 never preload it: the fork
server looks for a ``main_path`` key that the preparation data calls
``init_main_from_path``. For ``hwut serve`` and ``hwut demo`` the main script is the
``hwut`` console script, so every job process imported :mod:`hwut.cli` and all it
imports (the whole service) before it ran its job: about 0.15 s of CPU per job, 2 to 3
times a short job's own cost (``bench/bench_scaleout.py`` shows it). A worker host
(``python -m hwut worker``) never paid it: a main module run with ``-m`` is named,
not a path, and a ``__main__`` module is never re-imported.

:func:`hwut.runner.process.job_context` puts the main script's path in the
environment (:data:`hwut.runner.process.FORKSERVER_MAIN_ENV`) before the fork server
starts; with no path there, or in a process whose main script is that one already (the
server's own), this does nothing.
"""
from __future__ import annotations

import os
import sys
from multiprocessing import spawn

from .process import FORKSERVER_MAIN_ENV

_path = os.environ.get(FORKSERVER_MAIN_ENV)
if _path and getattr(sys.modules.get("__main__"), "__file__", None) != _path \
        and os.path.isfile(_path):
    try:
        spawn.import_main_path(_path)
    except (Exception, SystemExit):  # e.g. it reads sys.argv, which is not the parent's
        # here: the job processes import it as before (they get the parent's argv)
        pass
