"""``python -m trlearner.pipeline``: the one command the Snakemake rules run (:mod:`.cli`)."""

import sys

from trlearner.pipeline.cli import main

sys.exit(main())
