"""Job bodies behind ``rsretrieval <subcommand>``: generate, train, sweep, query, analyze."""
