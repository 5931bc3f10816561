"""`python -m ovchat_build`: the same as the `ovchat-build` command."""

import sys

from ovchat_build.command import main

sys.exit(main())
