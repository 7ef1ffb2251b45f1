"""A 2-D map of the photos' embeddings (PCA, or t-SNE of the first 50 principal components as
van der Maaten & Hinton 2008 recommend), for the embedding-map plot coloured by class, correctness or
subgroup. Rows without an embedding get NaN coordinates."""

from __future__ import annotations

import numpy as np

__all__ = ["METHODS", "embedding_map"]

METHODS = ("pca", "tsne")


def embedding_map(embeddings: np.ndarray, method: str = "pca", *, seed: int = 0, n_jobs: int = 1) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    e = np.asarray(embeddings, np.float64)
    ok = np.isfinite(e).all(axis=1)
    out = np.full((len(e), 2), np.nan)
    if ok.sum() < 3:
        return out
    x = e[ok]
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
    if method == "pca":
        out[ok] = PCA(n_components=2, random_state=seed).fit_transform(x)
        return out
    reduced = PCA(n_components=min(50, x.shape[1], len(x) - 1), random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    out[ok] = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                   n_jobs=n_jobs).fit_transform(reduced)
    return out
