"""`python -m services.cli` is the same as the `newsalert` command."""

import sys

from services.cli.main import main

sys.exit(main())
