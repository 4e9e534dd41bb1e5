import sys

from mcutrain.cli import main

sys.exit(main())
