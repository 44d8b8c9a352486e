"""Built-in encoders, registered through the same hook third-party plugins use."""
