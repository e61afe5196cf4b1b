"""One module per CLI subcommand, loaded only when that subcommand runs."""
