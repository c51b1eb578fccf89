"""``python -m dlmpaper.train``: the trainer's command line (:func:`dlmpaper.train.loop.main`)."""

import sys

from dlmpaper.train.loop import main

sys.exit(main())
