import sys

from framefarm.cli import main

sys.exit(main())
