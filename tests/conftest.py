import os
import sys

# tests import small helpers (walk_helpers) that live beside them
sys.path.insert(0, os.path.dirname(__file__))
