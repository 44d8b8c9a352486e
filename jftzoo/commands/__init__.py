"""The CLI's command groups, one module each, on top of the library (which never imports them)."""
