"""Read by gunicorn from the working directory: the adapter's logging and metrics hooks."""

from adapter.observe.gunicorn_hooks import *  # noqa: F403
