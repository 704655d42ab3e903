"""Published data credsim compares runs with (each row carries its source)."""
