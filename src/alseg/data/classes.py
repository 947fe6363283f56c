"""Class names and label values of the supported datasets (CamVid, Cityscapes, Pascal VOC).

Class id = index in the list. Each dataset's ignore value (unlabelled or void pixels) sits beside its
classes; :data:`IGNORE_INDEX` (255) is the ignore value of Cityscapes (after the label mapping), VOC and,
by default, folder datasets. The synthetic dataset's classes are in :mod:`alseg.data.synthetic`.
"""

from __future__ import annotations

CAMVID_CLASSES = [
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
]
CAMVID_IGNORE_INDEX = 11  # SegNet's "Unlabelled" (segnet_train.prototxt: ignore_label: 11)

CITYSCAPES_CLASSES = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
]
# labelId -> trainId of the official table (cityscapesScripts, helpers/labels.py); others are ignored.
CITYSCAPES_LABEL_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

VOC_CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
IGNORE_INDEX = 255
