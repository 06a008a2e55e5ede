"""The command line: a lazy root group; each command group lives in its own module."""
