"""Backends run firmware on a board instance (installed as ``hwut.backends``); see
``hwut.backends.base`` for the contract."""
