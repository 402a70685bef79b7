"""``python -m adapter``: the same as the ``genagent-adapter`` command."""

from adapter.cli import main

raise SystemExit(main())
