"""The ``pbrl`` subcommands, one module per kind of work; ``pbrl.cli`` parses the command line and calls them."""
