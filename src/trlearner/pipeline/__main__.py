"""``python -m trlearner.pipeline``: the commands the Snakemake rules run."""

import sys

from trlearner.pipeline.core import main

sys.exit(main())
