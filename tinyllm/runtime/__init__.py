"""The runtime: the plumbing every other room stands on, and none of it a lesson of its own.

    random.py      one explicit, seedable NumPy Generator (`manual_seed`), so every run and
                   every MPI rank draws the same numbers from the same seed
    threads.py     how many threads BLAS and the kernels use, and `parallel_for`, a help-first
                   loop that a busy machine cannot stall
    allocator.py   glibc's malloc thresholds raised so that a training step reuses the pages
                   of the step before; applied only when a program asks (`configure()`)
    fileio.py      atomic file writes: a temporary file, fsync, then a rename

Nothing here imports the rest of tinyllm, and importing it changes no process-wide setting:
the thread counts and the allocator change only when a program calls for it.
"""
