"""One module per ``rapidtomo`` subcommand (see rapidtomo.cli)."""
