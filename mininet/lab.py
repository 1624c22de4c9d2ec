#!/usr/bin/python3
"""Lab entry point usable from anywhere: `/usr/bin/python3 mininet/lab.py --topo linear,3`.
See flowgate_lab/__main__.py for the options."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flowgate_lab.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
