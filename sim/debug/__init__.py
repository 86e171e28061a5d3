"""A simulated debug probe's view of an emulated board: an ADIv5 SW-DP with one
AHB-AP (``dap``), the CoreSight ROM table and component ids, the FPB and the core
debug registers (``components``), a core that halts, steps and runs under a
debugger (``core``), and the board's console on a pseudo-terminal (``vcp``), put
together by ``board.SimulatedBoard``.

Pure Python and the emulator only: pyOCD's plug-in (``hwut.backends.simprobe``)
drives this package; nothing here imports pyOCD.
"""
