"""Imported by the job processes' fork server only (it is in :func:`job_context`'s
preload list): imports the server's main script there once, as multiprocessing means
to, so that each job process does not import it again.

Why: a forkserver child re-runs the parent's main script (as ``__mp_main__``) unless
the fork server already holds it, and CPython 3.11 to 3.13 never preload it: the fork
server looks for a ``main_path`` key that the preparation data calls
``init_main_from_path``. For ``hwut serve`` and ``hwut demo`` the main script is the
``hwut`` console script, so every job process imported :mod:`hwut.cli` and all it
imports (the whole service) before it ran its job: about 0.15 s of CPU per job, 2 to 3
times a short job's own cost. A worker host (``python -m hwut worker``) never paid it:
a package's ``__main__`` module is never imported again. A module run with
``python -m`` under another name is, and is handled the same way.

:func:`hwut.runner.process.job_context` puts the main script's path (or, for a module
run with ``python -m``, its name) in the environment
(:data:`hwut.runner.process.FORKSERVER_MAIN_ENV`) before the fork server starts. With
nothing there, or in a process whose main script is that one already, this does
nothing; if importing it fails here, the job processes import it as before.
"""
from __future__ import annotations

import os
import sys
from multiprocessing import spawn

from .process import FORKSERVER_MAIN_ENV

_kind, _, _main = os.environ.get(FORKSERVER_MAIN_ENV, "").partition(":")
try:
    if _kind == "path" and os.path.isfile(_main) \
            and getattr(sys.modules.get("__main__"), "__file__", None) != _main:
        spawn.import_main_path(_main)
    elif _kind == "module" and _main:
        # what each job process would do with the name (a private helper of spawn: the
        # fork server does it once instead)
        getattr(spawn, "_fixup_main_from_name", lambda name: None)(_main)
except (Exception, SystemExit):  # e.g. it reads sys.argv, which is not the parent's here
    pass
