"""Learned embeddings -> t-SNE maps and k-means clusters, with scores that say how well each
modality's embedding separates the digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmdigits.artifacts import pyplot, save_figure
from mmdigits.inference import as_tensor, inference_batch


@torch.inference_mode()
def embeddings_for(
    model: torch.nn.Module, image, audio, device: torch.device, batch_size: int | None = None
) -> dict[str, np.ndarray]:
    """{'image': (N, D), 'audio': (N, D), 'fused': (N, F)} for every modality the model has."""
    batch_size = batch_size or inference_batch(device)
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(image), batch_size):
        found = model.embed(
            as_tensor(image[start : start + batch_size], device), as_tensor(audio[start : start + batch_size], device)
        )
        for name, value in found.items():
            chunks.setdefault(name, []).append(value.float().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


TSNE_ITERATIONS = 500  # with PCA init and the automatic learning rate the map is settled by then


def tsne_2d(embedding: np.ndarray, seed: int = 0) -> np.ndarray:
    """Barnes-Hut t-SNE to 2-D (PCA init, automatic learning rate): (N, D) -> (N, 2).
    500 iterations instead of sklearn's 1000 halve the time (10,000 points: 32 s -> 15 s on 2
    cores); openTSNE, measured on the same data, was no faster (33 s)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    # PCA to 50 dimensions first, as is standard: the neighbour search gets much faster.
    reduced = PCA(n_components=min(50, *embedding.shape), random_state=seed).fit_transform(embedding)
    tsne = TSNE(
        n_components=2,
        init="pca",
        learning_rate="auto",
        perplexity=min(30.0, (len(embedding) - 1) / 3),
        max_iter=TSNE_ITERATIONS,
        random_state=seed,
    )
    return tsne.fit_transform(reduced).astype(np.float32)


KMEANS_STARTS = 10  # k-means++ starts; the fit with the least inertia is kept


def cluster(embedding: np.ndarray, seed: int = 0, k: int = 10) -> np.ndarray:
    """k-means on the embedding itself (not on its 2-D t-SNE picture). Ten starts, not one: on a
    fused embedding one start merges two digits and splits a third about half the time (19 of 40
    seeds on a flagship's validation pairs), so four starts still drew such a map now and then
    (purity 0.85 instead of 0.98 with seed 0); ten cost 0.8 s at 5,000 points."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=min(k, len(embedding)), n_init=KMEANS_STARTS, random_state=seed).fit_predict(embedding)


def numbered_by_digit(clusters: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """k-means clusters renumbered by the digit each stands for: the one-to-one pairing of clusters
    and digits that puts the most points under their own digit (the Hungarian assignment). k-means
    numbers its clusters arbitrarily, so cluster 2 of the map could be the fives, drawn in another
    colour than the true-digit panel beside it; renumbered, the two panels differ only where the
    clusters and the digits disagree. The scores do not change (they ignore the numbering)."""
    from scipy.optimize import linear_sum_assignment

    shared = np.zeros((int(clusters.max()) + 1, max(10, int(labels.max()) + 1)), dtype=np.int64)
    np.add.at(shared, (clusters, labels), 1)
    chosen_clusters, digits = linear_sum_assignment(shared, maximize=True)
    renumber = np.empty(len(shared), dtype=np.int64)
    renumber[chosen_clusters] = digits
    return renumber[clusters]


def cluster_scores(clusters: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NMI, ARI and purity (share of points whose cluster's majority label is theirs)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    majority = sum(np.bincount(labels[clusters == c]).max() for c in np.unique(clusters))
    return {
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
        "purity": float(majority / len(labels)),
    }


def medoid(points: np.ndarray, most: int = 1000) -> np.ndarray:
    """The point with the least total distance to the others (among `most` of them at most): where a
    group's label goes. A digit whose points form two islands has its median in the empty space
    between them; its medoid lies on the larger island."""
    if len(points) > most:
        points = points[np.random.default_rng(0).choice(len(points), most, replace=False)]
    distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    return points[np.argmin(distances.sum(axis=1))]


def plot_map(path: Path, coords: np.ndarray, clusters: np.ndarray, labels: np.ndarray | None, title: str) -> Path:
    """Two panels: points coloured by true digit (where known) and by k-means cluster."""
    plt = pyplot()

    panels = [("k-means cluster (k=10, on the embedding)", clusters)]
    if labels is not None:  # then the clusters are numbered by the digit each matches (numbered_by_digit)
        panels = [("true digit", labels), ("k-means cluster (k=10, on the embedding), by matched digit", clusters)]
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 6), squeeze=False)
    for axis, (name, colours) in zip(axes[0], panels, strict=True):
        axis.scatter(coords[:, 0], coords[:, 1], c=colours, cmap="tab10", s=4, alpha=0.7, vmin=-0.5, vmax=9.5)
        for value in np.unique(colours):  # the digit or cluster number on each group's medoid
            x, y = medoid(coords[colours == value])
            axis.text(
                x,
                y,
                str(value),
                fontsize=13,
                weight="bold",
                ha="center",
                va="center",
                bbox={"boxstyle": "circle", "facecolor": "white", "alpha": 0.8},
            )
        axis.set_title(name)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title)
    return save_figure(figure, path)
