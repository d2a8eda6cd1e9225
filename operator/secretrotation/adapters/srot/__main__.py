"""``python -m secretrotation.adapters.srot``: the ``kubectl srot`` plugin without its console script."""

import sys

from secretrotation.adapters.srot import main

sys.exit(main())
