"""ARQ job functions and the producer side. Imports ``cache``, never ``worker``."""
