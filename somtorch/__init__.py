"""somtorch: Self-Organizing Maps on CPU or CUDA with PyTorch.

>>> from somtorch import SOM
>>> som = SOM(10, 10, input_len=4, sigma=1.5, random_seed=0, device="cpu")
"""
from .evaluation import SOMEvaluation
from .som import SOM
from .threads import get_num_threads, set_num_threads

__all__ = ["SOM", "SOMEvaluation", "get_num_threads", "set_num_threads"]
__version__ = "0.1.0"
