"""Clustering and search algorithms that selectors build on; they work on feature matrices and know no selector.

- :mod:`~bilaf.algorithms.kmeans`: Lloyd's k-means in torch, its two-level variant, k-means++ seeding, and
  scikit-learn's and faiss' k-means behind one call.
- :mod:`~bilaf.algorithms.tracked_argmax`: the exact row-wise argmax of ``F @ C.T`` across calls whose centres
  move a little (ActiveFT's and Lloyd's assignment step).
"""
