"""The Asterisk worker benchmark (``bench/asterisk_worker.py``), by what each part does.

- ``config``: the run's constants and targets;
- ``control``: the loopback control channel to the fake Asterisk process;
- ``fake``: that process (``python -m bench.asterisk.fake``): the tests' fake Asterisk,
  timestamping every call;
- ``sandbox``: the GenerativeAgent sandbox under gunicorn, timing its own answers;
- ``machine``: what /proc says about the processes and the machine, stalls included;
- ``waves``: the per-call timings of one wave lined up, and their statistics;
- ``rig``: starting and driving the processes (sandbox, fake, Redis, the workers);
- ``profile``: py-spy's view of a worker during an extra wave;
- ``report``: the end-of-run checks, the verdict and the Markdown report.
"""
