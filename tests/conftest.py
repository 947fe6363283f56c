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


@pytest.fixture(scope="session")
def human_flow(tmp_path_factory) -> dict:
    """The finished run of tests/human_flow.py (people answer superpixel and binary rounds), made once."""
    from human_flow import run_human_flow

    return run_human_flow(tmp_path_factory.mktemp("human_units"))
