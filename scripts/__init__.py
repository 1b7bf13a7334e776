"""Tools that run the stages outside a container: ``make demo`` and ``serve`` as a process."""
