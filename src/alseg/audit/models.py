"""The model files of a round, checked without torch: ``model.pt``'s weights give the checksum it stores,
and the dump written with it names it (and, for pixel experiments, kept the candidates of round r + 1's
draws among the pixels round r's labels leave)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alseg.audit.files import Experiment, Finding
from alseg.torchfile import TorchFileError, read_torch_file, stored_weights_checksum


def check_model_files(exp: Experiment, round_index: int, findings: list[Finding]) -> str | None:
    """The checksum of round ``round_index``'s ``model.pt`` computed from its weights (None when it cannot
    be read); a stored checksum that its weights do not give, and an ``inference.h5`` that names another
    model or round, are findings."""
    path = exp.file(round_index, "model.pt")
    try:
        payload = read_torch_file(path)
        state = payload["state_dict"]
        checksum = stored_weights_checksum(state)
    except FileNotFoundError:
        findings.append(Finding(path, "", "missing"))
        return None
    except (TorchFileError, KeyError, TypeError, AttributeError) as err:
        findings.append(Finding(path, "", f"not a readable alseg model: {err}"))
        return None
    if payload.get("checksum") != checksum:
        findings.append(Finding(path, "checksum", f"the file says {payload.get('checksum')}, but its weights give "
                                                  f"{checksum} (edited after it was saved)"))
    _check_dump(exp, round_index, checksum, findings)
    return checksum


def _check_dump(exp: Experiment, round_index: int, checksum: str, findings: list[Finding]) -> None:
    """Every file of the round's dump (``inference.h5``, and its shards with ``inference.shards`` > 1)
    names the round's model and round, and a pixel group kept the right candidates."""
    from alseg.inference_file import dump_file_names

    for name in dump_file_names(int(exp.settings["inference"].get("shards", 1))):
        _check_dump_file(exp, round_index, checksum, exp.file(round_index, name), findings)


def _check_dump_file(exp: Experiment, round_index: int, checksum: str, path: Path, findings: list[Finding]) -> None:
    import h5py

    from alseg.h5attrs import _decode_attr

    if not path.is_file():
        findings.append(Finding(path, "", "missing"))
        return
    try:
        with h5py.File(path, "r") as h5:
            model, dumped_round = h5.attrs.get("model"), h5.attrs.get("round")
            pixels = {k: _decode_attr(v) for k, v in h5["pixel"].attrs.items()} if "pixel" in h5 else {}
    except OSError as err:
        findings.append(Finding(path, "", f"cannot read it: {err}"))
        return
    if model != checksum:
        findings.append(Finding(path, "model", f"{model}, but the round's model.pt is {checksum}"))
    if dumped_round is None or int(dumped_round) != round_index:
        findings.append(Finding(path, "round", f"{dumped_round}, in round {round_index}'s folder"))
    if "eligibility" in pixels:
        _check_pixel_candidates(exp, round_index, path, pixels, findings)


def _check_pixel_candidates(exp: Experiment, round_index: int, path: Path, pixels: dict[str, Any],
                            findings: list[Finding]) -> None:
    """The pixel group's candidates were chosen among the pixels round r + 1 may ask: those that round r's
    ``labels.npz`` has not asked (and void unless ``query_void``), for the configured draws."""
    from alseg.labels import LabelStoreError, load_labels
    from alseg.units.pixel import eligibility

    settings = exp.settings
    try:
        expected = eligibility(load_labels(exp.file(round_index, "labels.npz")), settings["acquisition"]["query_void"])
    except (FileNotFoundError, LabelStoreError):
        return  # the labels' own check names them
    if pixels["eligibility"] != expected:
        findings.append(Finding(path, "pixel candidates", f"chosen among other eligible pixels "
                                                          f"({pixels['eligibility']}) than round {round_index}'s "
                                                          f"labels.npz leaves ({expected})"))
    draws = {"budget": settings["budget"], "top_percent": float(settings["acquisition"]["top_percent"])}
    if {key: pixels.get(key) for key in draws} != draws:
        findings.append(Finding(path, "pixel candidates", f"cover draws of {pixels.get('budget')} from the top "
                                                          f"{pixels.get('top_percent')} %, the config asks "
                                                          f"{draws['budget']} from the top {draws['top_percent']} %"))
