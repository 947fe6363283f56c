"""A rank of tests/test_distributed.py: ``torchrun ... ddp_train_worker.py DATA.npz SETTINGS.json OUT.pt``.

Trains :func:`alseg.train.train_model` on the arrays of DATA.npz (and its binary ``answers``, if any) inside :func:`alseg.distributed.process_group`
(or in one process when started without torchrun); rank 0 saves the kept weights, the history and the best
epoch to OUT.pt. SETTINGS.json: ``model``, ``training``, ``seed`` and ``batchnorm`` (false: the model's
BatchNorm layers become identities, so that several ranks must give one process's model up to rounding).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

import alseg.train
from alseg.distributed import process_group
from alseg.points import PointLabels


def _without_batchnorm(build):
    def build_model(*args, **kwargs):
        model = build(*args, **kwargs)
        for module in list(model.modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(module, child_name, nn.Identity())
        return model
    return build_model


def main(data_file: str, settings_file: str, out_file: str) -> None:
    torch.set_num_threads(1)
    data = np.load(data_file)
    settings = json.loads(Path(settings_file).read_text())
    if not settings.get("batchnorm", True):
        alseg.train.build_model = _without_batchnorm(alseg.train.build_model)
    launched = "LOCAL_RANK" in os.environ
    with process_group(cuda=False) if launched else contextlib.nullcontext():
        labels = PointLabels(data["image"], data["y"], data["x"], data["cls"])
        result = alseg.train.train_model(
            settings["model"], settings["training"], data["images"], labels, data["val_images"], data["val_masks"],
            num_classes=2, ignore_index=255, seed=settings["seed"], log=lambda line: None,
            answers=data.get("answers"))
        if not launched or torch.distributed.get_rank() == 0:
            torch.save({"state": result.model.state_dict(), "history": result.history,
                        "best_epoch": result.best_epoch, "best_val_miou": result.best_val_miou}, out_file)


if __name__ == "__main__":
    main(*sys.argv[1:])
