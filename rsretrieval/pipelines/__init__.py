"""Everything that runs on Ray, by role (imports only point down this list):

* ``runtime``: starting / attaching Ray, MLflow tracking, preflight checks, checkpoint resolution;
* ``stages``: Ray Data and Ray Train stages (embedding, crops, generation, graph training, stores);
* ``benchmark``: the benchmark run: config -> plan of cells -> executor (``plan``, ``run``);
* ``jobs``: the other jobs behind ``rsretrieval <subcommand>`` (generate, train, sweep, query, analyze).

The library below (``rsretrieval.data``, ``matching``, ``evaluation``, ...) never imports Ray.
"""
