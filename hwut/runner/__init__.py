"""Each job runs in a process of its own: the unit the server starts per job and a worker
host will run for a remote server. ``wire`` is what crosses between the two sides,
``child`` runs in the job's process, ``process`` is the server's side."""
