"""``python -m rsretrieval.fake_gemini``: the fake Gemini server in the foreground (see :mod:`.serve`)."""

import sys

from rsretrieval.fake_gemini.serve import main

sys.exit(main())
