"""Puts this folder on ``sys.path`` so that the runtime tests can ``import runtime_cases`` in any import mode."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
