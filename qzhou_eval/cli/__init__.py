"""Command line: argument parsing only; every command calls the library."""
