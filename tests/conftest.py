import os
import sys

import matplotlib
import torch

# Tests run headless and import the flat top-level modules of the repo.
matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(1)
