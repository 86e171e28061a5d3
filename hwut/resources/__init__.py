"""HTTP resources; each receives what it needs (store, scheduler, config) in its constructor."""
