"""Command-line tools: every command's main(argv=None)."""
