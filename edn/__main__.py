"""``python -m edn`` is the same as the ``edn`` console script."""

from edn.cli import main

raise SystemExit(main())
