import sys

from atomcollapse.cli import main

sys.exit(main())
