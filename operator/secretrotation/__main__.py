"""``python -m secretrotation``: the same as the ``secretrotation`` command."""

import sys

from secretrotation.adapters.cli import main

sys.exit(main())
