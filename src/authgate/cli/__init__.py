"""The `authgate` command line."""
