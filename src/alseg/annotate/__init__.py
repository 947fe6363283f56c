"""People in the loop: a keyboard-only annotation page, and answer interchange with Label Studio.

- :class:`AnnotationSession` (``session``): one round's queries, the answers so far (saved after
  each one in ``answers.partial.json``), ``answers.csv`` once complete;
- :class:`AnnotationServer` (``server``): the local page and its JSON endpoints, standard library only;
- :mod:`alseg.regions`: where the region of a query comes from (:class:`RegionSource`), re-exported here;
- :mod:`~alseg.annotate.labelstudio`: export queries as Label Studio tasks, import its exports.

``alseg annotate``, ``alseg export-labelstudio`` and ``alseg import-labelstudio`` are the commands;
docs/annotation.md is the user's guide.
"""

from alseg.annotate.keys import (
    MAX_CLASSES,
    NO_KEYS,
    SKIP_KEYS,
    UNDO_KEYS,
    YES_KEYS,
    class_keys,
)
from alseg.annotate.progress import ProgressError, progress_path_for
from alseg.annotate.server import AnnotationServer
from alseg.annotate.session import AnnotationError, AnnotationSession
from alseg.regions import (
    RegionError,
    RegionSource,
    regions_from_file,
    regions_from_label_maps,
    regions_from_superpixel_file,
)

__all__ = [
    "MAX_CLASSES",
    "NO_KEYS",
    "SKIP_KEYS",
    "UNDO_KEYS",
    "YES_KEYS",
    "AnnotationError",
    "AnnotationServer",
    "AnnotationSession",
    "ProgressError",
    "RegionError",
    "RegionSource",
    "class_keys",
    "progress_path_for",
    "regions_from_file",
    "regions_from_label_maps",
    "regions_from_superpixel_file",
]
