from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAMVID = Path(os.environ.get("ALSEG_CAMVID", REPO.parent / "shared" / "data" / "camvid"))
needs_camvid = pytest.mark.skipif(
    not (CAMVID / "trainannot").is_dir(),
    reason=f"CamVid not found at {CAMVID} (set ALSEG_CAMVID to a SegNet-layout copy)",
)
