"""The benchmark run: config -> plan of cells (``plan``) -> one executor (``run``)."""
