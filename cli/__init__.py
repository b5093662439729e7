"""The `genesis` command line (built with fire)."""
