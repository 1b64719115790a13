import sys

from edgeml_runtime.cli import main

sys.exit(main())
