import sys

from timelaw.cli import main

sys.exit(main())
