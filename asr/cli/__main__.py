"""``python -m asr.cli ...`` (what torchrun and the tests' subprocesses run)."""

import sys

from asr.cli import main

sys.exit(main())
