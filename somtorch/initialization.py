"""Weight initialisation shared by the native SOM and the MiniSom facade."""
from __future__ import annotations

import numpy as np


def pca_plane(mean: np.ndarray, covariance: np.ndarray, x: int, y: int) -> np.ndarray:
    """Weights (x, y, D) spanning the first two principal components, MiniSom's ``pca_weights_init`` formula:

    W[i, j] = mean + c1_i·pc1 + c2_j·pc2, c1 = linspace(−1, 1, x), c2 = linspace(−1, 1, y), with pc1 and pc2 the
    eigenvectors of the two largest eigenvalues of ``covariance`` (D, D).
    """
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    largest = np.argsort(eigenvalues)[::-1]
    pc1, pc2 = eigenvectors[:, largest[0]], eigenvectors[:, largest[1]]
    c1 = np.linspace(-1, 1, x)[:, None, None]
    c2 = np.linspace(-1, 1, y)[None, :, None]
    return mean + c1 * pc1 + c2 * pc2
