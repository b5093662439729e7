"""Datalists and input checks of the segmentation target tasks (docs/method.md §5.1, §5.3).

Datalists are Decathlon-style JSON files (``training`` / ``validation`` / ``test`` lists of
``{"image", "label"}`` paths relative to the file), read by MONAI's ``load_decathlon_datalist``.
Writers for the real layouts:

* LiTS 2017: ``volume-N.nii`` and ``segmentation-N.nii`` (any folders below the root);
* the Decathlon's Task03_Liver: ``dataset.json`` with ``imagesTr/liver_N.nii.gz``;
  both split as the reference: cases 0-99 training, 100-114 validation, 115-129 test;
* any image folder with a label folder of the same file names (e.g. LIDC-IDRI scans and the
  consensus masks of ``genesis lidc-mask``), split by seeded fractions.

The split is written into the file ("split" entry) and never recomputed when training reads it.
Bad cases fail with the case named: :py:func:`load_segmentation_datalist` checks files and
NIfTI headers before training starts, :py:class:`CheckSegmentationCased` checks loaded arrays.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import load_decathlon_datalist
from monai.transforms import MapTransform

from monai_genesis.data.atomic_write import write_json_atomic
from monai_genesis.data.datalist import SECTIONS, _match_labels, _relative, case_id_of, find_volumes, split_cases
from monai_genesis.data.io import NIFTI_SUFFIXES, volume_suffix

__all__ = [
    "LIVER_SPLIT",
    "liver_section",
    "lits_datalist",
    "decathlon_liver_datalist",
    "paired_datalist",
    "load_segmentation_datalist",
    "CheckSegmentationCased",
]

# docs/method.md §5.1 (LCS): cases 0-99 training, 100-114 validation, 115-129 test
LIVER_SPLIT = {"training": (0, 99), "validation": (100, 114), "test": (115, 129)}
_LITS_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")
_LITS_LABEL = re.compile(r"^segmentation-(\d+)\.nii(\.gz)?$")
_DECATHLON_LIVER = re.compile(r"liver_(\d+)\.nii(\.gz)?$")
_AFFINE_ATOL_MM = 1e-3


def liver_section(case_number: int) -> str | None:
    """The §5.1 section of LiTS / Task03_Liver case ``case_number``; None outside 0-129."""
    for section, (first, last) in LIVER_SPLIT.items():
        if first <= case_number <= last:
            return section
    return None


def _split_by_number(cases: Mapping[int, dict], source: str) -> dict:
    sections: dict[str, list] = {name: [] for name in SECTIONS}
    unused = []
    for number in sorted(cases):
        section = liver_section(number)
        (sections[section] if section else unused).append(cases[number])
    if not sections["training"]:
        raise ValueError(f"{source}: none of its cases is numbered 0-99, so the reference split leaves no training case.")
    return {
        **sections,
        "numTraining": len(sections["training"]),
        "numValidation": len(sections["validation"]),
        "numTest": len(sections["test"]),
        "split": {"kind": "case_number", "ranges": {k: list(v) for k, v in LIVER_SPLIT.items()},
                  "unused": [case_id_of(c["image"]) for c in unused]},
    }


def _output_base(output_json) -> str:
    return os.path.dirname(os.path.abspath(os.fspath(output_json)))


def lits_datalist(root: str | os.PathLike, output_json: str | os.PathLike) -> dict:
    """
    Datalist of the LiTS 2017 training data (``volume-N.nii`` with ``segmentation-N.nii``, found
    anywhere below ``root``, e.g. its two "Training Batch" folders), split by case number (§5.1).

    Raises:
        ValueError: no volume found, a volume without its segmentation, or a number found twice.
    """
    root = os.fspath(root)
    volumes, labels = {}, {}
    for path in find_volumes(root):
        name = os.path.basename(path)
        for pattern, found in ((_LITS_VOLUME, volumes), (_LITS_LABEL, labels)):
            match = pattern.match(name)
            if match:
                number = int(match.group(1))
                if number in found:
                    raise ValueError(f"{root}: case {number} found twice ({found[number]} and {path}).")
                found[number] = path
    if not volumes:
        raise ValueError(f"{root}: no LiTS volumes found (expected volume-N.nii and segmentation-N.nii files).")
    missing = sorted(set(volumes) - set(labels))
    if missing:
        raise ValueError(f"{root}: no segmentation-N.nii for volume(s) {missing[:10]}; each volume-N.nii needs its segmentation.")
    base = _output_base(output_json)
    cases = {n: {"image": _relative(volumes[n], base), "label": _relative(labels[n], base)} for n in volumes}
    datalist = {"name": "LiTS", "tensorImageSize": "3D", "labels": {"0": "background", "1": "liver", "2": "tumour"},
                **_split_by_number(cases, root)}
    write_json_atomic(datalist, output_json)
    return datalist


def decathlon_liver_datalist(task_dir: str | os.PathLike, output_json: str | os.PathLike) -> dict:
    """
    Datalist of the Medical Segmentation Decathlon's Task03_Liver, from its ``dataset.json``
    ("training" entries ``./imagesTr/liver_N.nii.gz`` with labels), split by case number (§5.1).

    Raises:
        FileNotFoundError: ``dataset.json`` or a file it lists is missing.
        ValueError: ``dataset.json`` is not the Decathlon's (no "training" list of image/label entries).
    """
    task_dir = os.path.abspath(os.fspath(task_dir))
    manifest = os.path.join(task_dir, "dataset.json")
    if not os.path.isfile(manifest):
        raise FileNotFoundError(f"{manifest}: no such file; give the Task03_Liver folder (it holds dataset.json, imagesTr, labelsTr).")
    try:
        items = load_decathlon_datalist(manifest, is_segmentation=True, data_list_key="training", base_dir=task_dir)
    except (KeyError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"{manifest}: not a Decathlon dataset.json with a 'training' list ({error}).") from None
    base = _output_base(output_json)
    cases = {}
    for item in items:
        match = _DECATHLON_LIVER.search(os.path.basename(str(item.get("image", ""))))
        if "label" not in item or match is None:
            raise ValueError(f"{manifest}: entry {item} is not a liver_N image with a label.")
        for key in ("image", "label"):
            if not os.path.isfile(item[key]):
                raise FileNotFoundError(f"{manifest} lists {item[key]}, which does not exist.")
        cases[int(match.group(1))] = {"image": _relative(item["image"], base), "label": _relative(item["label"], base)}
    datalist = {"name": "Task03_Liver", "tensorImageSize": "3D", "labels": {"0": "background", "1": "liver", "2": "cancer"},
                **_split_by_number(cases, manifest)}
    write_json_atomic(datalist, output_json)
    return datalist


def paired_datalist(images_dir: str | os.PathLike, labels_dir: str | os.PathLike, output_json: str | os.PathLike,
                    val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> dict:
    """
    Datalist of image volumes with label volumes of the same file names (case ids), split into
    training / validation / test by seeded fractions of the sorted case ids (:py:func:`split_cases`).
    """
    images = find_volumes(images_dir)
    labels = _match_labels(images, os.fspath(labels_dir))
    split = split_cases([case_id_of(p) for p in images], val_fraction, test_fraction, seed)
    base = _output_base(output_json)
    sections: dict[str, list] = {name: [] for name in SECTIONS}
    for path in images:
        case = case_id_of(path)
        sections[split[case]].append({"image": _relative(path, base), "label": _relative(labels[case], base)})
    datalist = {"name": os.path.basename(os.path.abspath(os.fspath(images_dir))), "tensorImageSize": "3D", **sections,
                "numTraining": len(sections["training"]), "numValidation": len(sections["validation"]),
                "numTest": len(sections["test"]),
                "split": {"kind": "fractions", "val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}}
    write_json_atomic(datalist, output_json)
    return datalist


def _nifti_header(path: str) -> tuple[tuple[int, ...], np.ndarray] | None:
    """(shape, affine) of a NIfTI file from its header (no voxel data read); None for other formats."""
    if volume_suffix(path) not in NIFTI_SUFFIXES:
        return None
    import nibabel as nib

    try:
        image = nib.load(path)
    except Exception as error:  # noqa: BLE001 (any reader failure is reported with the file)
        raise ValueError(f"{path}: not a readable NIfTI file ({error}).") from None
    return tuple(int(s) for s in image.shape), np.asarray(image.affine, float)


def _check_header_pair(item: Mapping, image_key: str, label_key: str, num_channels: int | None, where: str) -> None:
    image, label = _nifti_header(item[image_key]), _nifti_header(item[label_key]) if label_key in item else None
    if image is None:
        return
    shape, affine = image
    channels = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    if len(shape) < 3 or (num_channels is not None and channels != num_channels):
        raise ValueError(f"{where}: image {item[image_key]} has shape {shape}, i.e. {channels} channel(s); expected {num_channels}.")
    if label is None:
        return
    label_shape, label_affine = label
    label_shape = label_shape[:3] + tuple(s for s in label_shape[3:] if s != 1)
    if label_shape != shape[:3]:
        raise ValueError(f"{where}: label {item[label_key]} has shape {label_shape}, its image {item[image_key]} {shape[:3]}.")
    if not np.allclose(label_affine, affine, atol=_AFFINE_ATOL_MM):
        raise ValueError(f"{where}: label {item[label_key]} and image {item[image_key]} have different affines "
                         f"(voxel-to-world matrices):\n{np.round(label_affine, 4)}\nvs\n{np.round(affine, 4)}.")


def load_segmentation_datalist(
    datalist: str | os.PathLike,
    section: str = "training",
    base_dir: str | os.PathLike | None = None,
    image_key: str = "image",
    label_key: str | None = "label",
    num_channels: int | None = None,
    check_headers: bool = True,
) -> list[dict]:
    """
    One section of a Decathlon-style datalist with absolute paths, checked before training starts.

    Args:
        datalist: the JSON file.
        section: "training", "validation" or "test".
        base_dir: folder the paths are relative to (a bundle's ``dataset_dir``); None: the JSON's folder.
        image_key: the image path key.
        label_key: the label path key; None when labels are not needed (inference).
        num_channels: the image channels the network takes; None skips that check.
        check_headers: compare each NIfTI label's shape and affine with its image's (headers only).

    Raises:
        FileNotFoundError: the datalist, or a file it lists, does not exist.
        ValueError: invalid JSON, a missing or empty section, an item without image or label,
            a label whose shape or affine differs from its image's, or the wrong channel count.
    """
    path = os.path.abspath(os.fspath(datalist))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"datalist '{path}' does not exist: set dataset_dir (or datalist); "
                                "`genesis segmentation-datalist` writes one from the LiTS, Decathlon or image/label layouts.")
    try:
        with open(path) as f:
            content = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"datalist '{path}' is not valid JSON: {error}.") from None
    if not isinstance(content, dict) or not isinstance(content.get(section), list):
        found = sorted(k for k, v in content.items() if isinstance(v, list)) if isinstance(content, dict) else []
        raise ValueError(f"datalist '{path}' has no '{section}' list (lists found: {found}).")
    if not content[section]:
        raise ValueError(f"section '{section}' of datalist '{path}' is empty: no labelled cases to use.")
    base = os.path.dirname(path) if base_dir is None else os.fspath(base_dir)
    for index, item in enumerate(content[section]):
        wanted = [image_key] + ([label_key] if label_key else [])
        if not isinstance(item, dict) or any(k not in item for k in wanted):
            raise ValueError(f"item {index} of section '{section}' in '{path}' lacks {wanted}: {item!r}.")
    items = load_decathlon_datalist(path, is_segmentation=label_key is not None, data_list_key=section, base_dir=base)
    for index, item in enumerate(items):
        where = f"case {case_id_of(item[image_key])} (item {index} of '{section}' in {path})"
        for key in [image_key] + ([label_key] if label_key else []):
            if not os.path.exists(item[key]):
                raise FileNotFoundError(f"{where}: {key} file {item[key]} does not exist.")
        if check_headers:
            _check_header_pair(item, image_key, label_key or "", num_channels, where)
    return items


def _case_name(data: Mapping, key: Hashable) -> str:
    value = data.get(key)
    meta = getattr(value, "meta", None) or {}
    name = meta.get("filename_or_obj") or data.get(f"{key}_meta_dict", {}).get("filename_or_obj")
    return str(name) if name else f"<{key} without a file name>"


class CheckSegmentationCased(MapTransform):
    """
    Check a loaded (channel-first) image and label before cropping, failing with the case named:
    the image's channel count, a label of another shape or affine, a label without foreground, a
    volume smaller than the crop, non-finite image values. Put it after ``EnsureChannelFirstd``
    (and ``Orientationd``), before padding and cropping.

    Args:
        keys: (image key, label key); the label key may be absent from an item (inference) when
            ``allow_missing_keys`` is True.
        num_channels: the image channels the network takes.
        min_size: the least spatial size (the crop) when the volumes are not padded to it; None: no check.
        require_foreground: a label without any voxel > 0 is an error (a sampler of foreground crops needs one).
        affine_atol: tolerance (mm) of the affine comparison.
        allow_missing_keys: as ``MapTransform``.
    """

    def __init__(self, keys: KeysCollection = ("image", "label"), num_channels: int = 1, min_size: Sequence[int] | None = None,
                 require_foreground: bool = True, affine_atol: float = _AFFINE_ATOL_MM, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) not in (1, 2):
            raise ValueError(f"keys must be (image,) or (image, label), got {self.keys}.")
        self.num_channels = int(num_channels)
        self.min_size = None if min_size is None else tuple(int(s) for s in min_size)
        self.require_foreground = bool(require_foreground)
        self.affine_atol = float(affine_atol)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        image_key = self.keys[0]
        label_key = self.keys[1] if len(self.keys) > 1 else None
        image = d[image_key]
        case = _case_name(d, image_key)
        if image.ndim != 4 or image.shape[0] != self.num_channels:
            raise ValueError(f"{case}: image has {image.shape[0] if image.ndim == 4 else 'no'} channel(s) of spatial shape "
                             f"{tuple(image.shape[1:])}; the network takes {self.num_channels} channel(s) of a 3D volume.")
        if self.min_size is not None and any(s < m for s, m in zip(image.shape[1:], self.min_size)):
            raise ValueError(f"{case}: volume {tuple(image.shape[1:])} is smaller than the crop {self.min_size}; "
                             "pad it (pad_to_crop=true) or use a smaller cube_size.")
        if torch.is_floating_point(torch.as_tensor(image)) and not bool(torch.isfinite(torch.as_tensor(image)).all()):
            raise ValueError(f"{case}: the image contains NaN or infinite values.")
        if label_key is None or label_key not in d:
            if label_key is not None and not self.allow_missing_keys:
                raise KeyError(f"{case}: no '{label_key}' in the item.")
            return d
        label = d[label_key]
        label_case = _case_name(d, label_key)
        if label.ndim != 4 or label.shape[0] != 1:
            raise ValueError(f"{label_case}: a label must be one channel (values 0, 1, ...), got shape {tuple(label.shape)}.")
        if tuple(label.shape[1:]) != tuple(image.shape[1:]):
            raise ValueError(f"{label_case}: label shape {tuple(label.shape[1:])} differs from its image's {tuple(image.shape[1:])} ({case}).")
        image_affine, label_affine = getattr(image, "affine", None), getattr(label, "affine", None)
        if image_affine is not None and label_affine is not None and not torch.allclose(
            torch.as_tensor(label_affine, dtype=torch.float64), torch.as_tensor(image_affine, dtype=torch.float64), atol=self.affine_atol
        ):
            raise ValueError(f"{label_case}: label affine differs from its image's ({case}): the label does not lie on the image's voxels.")
        if self.require_foreground and not bool((torch.as_tensor(label) > 0).any()):
            raise ValueError(f"{label_case}: the label has no foreground voxel; remove the case from the datalist or fix its label.")
        return d
