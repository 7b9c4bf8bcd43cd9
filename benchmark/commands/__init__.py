"""The commands of ``python -m benchmark``: one module each, a ``add_parser(sub)`` and a
``cmd_*`` function; the shared plumbing is in ``common``."""
