"""Shared test set-up: the repository root on sys.path, so `import jaxgenre` and
`import configs` work from a plain checkout."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
