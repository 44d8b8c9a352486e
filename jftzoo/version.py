"""The installed jftzoo version, in a module that imports nothing (every record names it)."""

__version__ = "0.2.0"
