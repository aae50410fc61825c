"""Readers: where samples come from (folders, archives, image arrays, text files).

Every image reader is an :class:`ImageSource`: a list of ``ids`` (stable names,
usually the path of each file inside the folder or archive) and ``labels``
(class index, ``-1`` when unknown) in *source order*, plus
:meth:`ImageSource.iter_items`, which yields the raw data of a range of items
(the encoded file bytes, or a decoded image array) in that order. Decoding and
resizing belong to the backbone's preprocessing, not here.

One module per kind of input: :mod:`~bilaf.features.readers.base` (the
:class:`ImageSource` contract and the naming conventions),
:mod:`~bilaf.features.readers.files` (folder trees, tar and zip archives),
:mod:`~bilaf.features.readers.arrays` (image arrays) and
:mod:`~bilaf.features.readers.texts` (texts). The dispatch over them lives in
:mod:`bilaf.features.inputs`. Their public names are importable from here.
"""

from .arrays import ARRAY_IMAGE_KEYS, ARRAY_LABEL_KEYS, ArraySource, as_uint8_images
from .base import ARCHIVE_SUFFIXES, ARRAY_SUFFIXES, IMAGE_EXTENSIONS, SPLIT_NAMES, ImageSource, PathLike
from .files import FileTreeSource, FolderSource, TarSource, ZipSource
from .texts import TextSamples

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLIT_NAMES",
    "ARCHIVE_SUFFIXES",
    "ARRAY_SUFFIXES",
    "ARRAY_IMAGE_KEYS",
    "ARRAY_LABEL_KEYS",
    "PathLike",
    "ImageSource",
    "FileTreeSource",
    "FolderSource",
    "TarSource",
    "ZipSource",
    "ArraySource",
    "as_uint8_images",
    "TextSamples",
]
