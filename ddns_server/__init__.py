"""ddns-server: authoritative DNS for dynamic zones."""

__version__ = "0.1.0"
