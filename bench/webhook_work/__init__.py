"""The voice webhook's work counted, not timed (``python3 bench/webhook_work.py``): the
in-process driver, and the runs under valgrind and strace that count what it does."""
