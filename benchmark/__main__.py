"""``python -m benchmark`` is the ``fusebench`` command."""

from benchmark.cli import main

raise SystemExit(main())
