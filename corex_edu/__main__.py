import sys

from corex_edu.cli import main

sys.exit(main())
