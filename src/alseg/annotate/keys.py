"""The keyboard of the annotation page: which key answers which class, and the command keys.

Class keys, in class-id order: ``1``-``9``, ``0``, then the lower-case letters, then the upper-case
letters (Shift + letter). The letters of the command keys (``s`` skip, ``u`` undo) and of the binary
answers (``y``, ``n``) are never class keys, so one key never means two things. That gives keys for 54
classes (CamVid 11, Cityscapes 19 and VOC 21 need no letter beyond ``k``).
"""

from __future__ import annotations

import string

#: Keys that skip the shown query (recorded as ``skip``). ``" "`` is the space bar.
SKIP_KEYS = ("s", " ")
#: Keys that take back the last answer and show its query again.
UNDO_KEYS = ("Backspace", "u")
#: Keys that answer a binary query yes or no.
YES_KEYS = ("y",)
NO_KEYS = ("n",)

_RESERVED = {"s", "u", "y", "n"}
_CLASS_KEYS = (
    [str(d) for d in range(1, 10)]
    + ["0"]
    + [c for c in string.ascii_lowercase if c not in _RESERVED]
    + [c for c in string.ascii_uppercase if c.lower() not in _RESERVED]
)
MAX_CLASSES = len(_CLASS_KEYS)


def class_keys(num_classes: int) -> list[str]:
    """The key of each class id, ``keys[c]`` answering class ``c``.

    Raises
    ------
    ValueError
        If the dataset has more classes than there are keys (:data:`MAX_CLASSES`).
    """
    if not 0 < num_classes <= MAX_CLASSES:
        raise ValueError(
            f"the annotation page has keys for 1..{MAX_CLASSES} classes, the dataset has {num_classes}"
        )
    return _CLASS_KEYS[:num_classes]


def key_label(key: str) -> str:
    """How a key is written on the page (``" "`` is ``Space``)."""
    return "Space" if key == " " else key
