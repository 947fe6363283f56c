"""The model files of a round, checked without torch: ``model.pt``'s weights give the checksum it stores,
and the dump written with it names it."""

from __future__ import annotations

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
    import h5py

    path = exp.file(round_index, "inference.h5")
    if not path.is_file():
        findings.append(Finding(path, "", "missing"))
        return
    try:
        with h5py.File(path, "r") as h5:
            model, dumped_round = h5.attrs.get("model"), h5.attrs.get("round")
    except OSError as err:
        findings.append(Finding(path, "", f"cannot read it: {err}"))
        return
    if model != checksum:
        findings.append(Finding(path, "model", f"{model}, but the round's model.pt is {checksum}"))
    if dumped_round is None or int(dumped_round) != round_index:
        findings.append(Finding(path, "round", f"{dumped_round}, in round {round_index}'s folder"))
