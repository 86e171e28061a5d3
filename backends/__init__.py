"""Backends run firmware on a board instance; see ``backends.base`` for the contract."""
