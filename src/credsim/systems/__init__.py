"""Social credit systems, one module each."""
