import sys

from trlearner.cli import main

sys.exit(main())
