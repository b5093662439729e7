"""Brain tumour MRI data for the BMS target task: datalists from the real layouts, the §5.1 split, checks.

Two layouts are read (docs/method.md §5.3):
    * the Medical Segmentation Decathlon's ``Task01_BrainTumour``: ``dataset.json``, ``imagesTr/`` 4D
      NIfTI files (FLAIR, T1w, T1gd, T2w along the 4th axis) and ``labelsTr/`` (0 background,
      1 oedema, 2 non-enhancing tumour, 3 enhancing tumour, as its ``dataset.json`` names them);
    * BraTS 2018 and later: one folder per patient with ``<id>_flair``, ``<id>_t1``, ``<id>_t1ce``,
      ``<id>_t2`` and ``<id>_seg`` NIfTI files (labels 1 necrotic/non-enhancing core, 2 oedema,
      4 enhancing tumour), in any folder tree (BraTS 2018 has ``HGG/`` and ``LGG/``).

Every item of the datalist lists the four modalities in the Decathlon's order (:data:`MODALITIES`),
and every label it names uses the BraTS values: the Decathlon's labels are converted once, when the
datalist is written, into ``labels_brats/`` (its label names read from ``dataset.json``), so the
bundle reads one convention and rejects any other.

Split (docs/method.md §5.1, BMS): the cases of folds 1 and 2, sorted and shuffled with seed 4, give one
eighth to validation and the rest to training; fold 3 is the test set. The reference's fold lists are
not distributed, so folds come from a file when given (``folds``: CSV ``case,fold`` or JSON
``{case: fold}``, folds 1-3) and are otherwise drawn: the sorted case ids are dealt into three folds
with the same seed (:func:`monai_genesis.data.datalist.assign_folds`). Which of the two happened is
written into the datalist (``split``), and the bundle only ever reads the split from that file.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Mapping, Sequence

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses, MapTransform

from monai_genesis.data.atomic_write import write_atomic, write_json_atomic
from monai_genesis.data.datalist import SECTIONS, assign_folds

__all__ = [
    "MODALITIES",
    "BRATS_SUFFIXES",
    "BRATS_LABELS",
    "TARGETS",
    "SPLIT_SEED",
    "VAL_FRACTION",
    "target_channels",
    "modality_indices",
    "find_brats_cases",
    "decathlon_label_map",
    "brain_split",
    "check_brain_case",
    "make_brain_datalist",
    "brain_inference_data",
    "SelectModalitiesd",
    "BratsTargetd",
    "BratsRegionsToLabeld",
]

# channel order of every image in a datalist: the Decathlon's, which BraTS folders are read into
MODALITIES = ("FLAIR", "T1w", "T1gd", "T2w")
BRATS_SUFFIXES = {"FLAIR": "flair", "T1w": "t1", "T1gd": "t1ce", "T2w": "t2"}
BRATS_LABELS = (0, 1, 2, 4)  # background, necrotic / non-enhancing core, oedema, enhancing tumour
# what the network predicts: one sigmoid channel per region, in ConvertToMultiChannelBasedOnBratsClasses' order
TARGETS = {"whole_tumour": ("whole tumour",), "subregions": ("tumour core", "whole tumour", "enhancing tumour")}
# docs/method.md §5.1, BMS: folds 1+2 shuffled with seed 4, one eighth validation; fold 3 test
SPLIT_SEED = 4
VAL_FRACTION = 1 / 8
TRAIN_FOLDS, TEST_FOLD = (1, 2), 3
NIFTI = (".nii.gz", ".nii")


def target_channels(target: str) -> tuple[str, ...]:
    """Names of the output channels for ``target`` ("whole_tumour" or "subregions")."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {sorted(TARGETS)}, got {target!r}.")
    return TARGETS[target]


def modality_indices(modalities: Sequence[str] | str) -> list[int]:
    """Channel indices of ``modalities`` (names from :data:`MODALITIES`, case-insensitive) in a datalist image."""
    if isinstance(modalities, str):
        modalities = [modalities]
    lower = [m.lower() for m in MODALITIES]
    indices = []
    for name in modalities:
        if str(name).lower() not in lower:
            raise ValueError(f"unknown MRI modality {name!r}: expected some of {list(MODALITIES)}.")
        indices.append(lower.index(str(name).lower()))
    if not indices or len(set(indices)) != len(indices):
        raise ValueError(f"modalities must name each of {list(MODALITIES)} at most once, got {list(modalities)}.")
    return indices


def _nifti_stem(name: str) -> str | None:
    for suffix in NIFTI:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def find_brats_cases(root: str | os.PathLike) -> dict[str, dict]:
    """BraTS patient folders under ``root``: {case id: {"image": [flair, t1, t1ce, t2], "label": seg or None}}.

    A folder is a case when it holds a ``*_flair`` NIfTI file; the case id is the folder name.

    Raises:
        ValueError: a case lacks a modality, or two folders share a name, or no case was found.
    """
    root = os.fspath(root)
    cases: dict[str, dict] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        stems = {_nifti_stem(f): f for f in files if not f.startswith(".") and _nifti_stem(f)}
        if not any(s.lower().endswith("_flair") for s in stems):
            continue
        case = os.path.basename(folder)
        if case in cases:
            raise ValueError(f"two BraTS folders are named {case!r}: {cases[case]['folder']} and {folder}; rename one.")
        by_suffix = {s.rsplit("_", 1)[-1].lower(): os.path.join(folder, f) for s, f in stems.items() if "_" in s}
        missing = [m for m, suffix in BRATS_SUFFIXES.items() if suffix not in by_suffix]
        if missing:
            raise ValueError(f"BraTS case {case!r} ({folder}): no file for {missing} "
                             f"(expected <id>_{{{','.join(BRATS_SUFFIXES.values())}}}.nii.gz).")
        cases[case] = {"folder": folder, "image": [by_suffix[BRATS_SUFFIXES[m]] for m in MODALITIES],
                       "label": by_suffix.get("seg")}
    if not cases:
        raise ValueError(f"{root}: no BraTS case found (a folder with <id>_flair.nii.gz) and no Decathlon dataset.json.")
    return cases


def decathlon_label_map(labels: Mapping[str, str]) -> dict[int, int]:
    """Decathlon label value -> BraTS value, from the names in ``dataset.json["labels"]``."""
    mapping = {}
    for value, name in labels.items():
        lowered = str(name).lower()
        if int(value) == 0:
            mapping[0] = 0
        elif "edema" in lowered or "oedema" in lowered:
            mapping[int(value)] = 2
        elif "non-enhancing" in lowered or "non enhancing" in lowered or "necro" in lowered:
            mapping[int(value)] = 1
        elif "enhancing" in lowered:
            mapping[int(value)] = 4
        else:
            raise ValueError(f"dataset.json: label {value} ({name!r}) is not a BraTS tumour region.")
    if sorted(mapping.values()) != list(BRATS_LABELS):
        raise ValueError(f"dataset.json labels {dict(labels)} do not name background, oedema, non-enhancing "
                         "and enhancing tumour once each.")
    return mapping


def _read_folds(folds: str | os.PathLike | Mapping) -> dict[str, int]:
    if isinstance(folds, Mapping):
        table = dict(folds)
    else:
        path = os.fspath(folds)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"folds file '{path}' does not exist.")
        if path.lower().endswith(".json"):
            with open(path) as f:
                table = json.load(f)
        else:
            with open(path, newline="") as f:
                rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
            if rows and not rows[0][1].strip().lstrip("-").isdigit():
                rows = rows[1:]  # header
            table = {r[0].strip(): r[1].strip() for r in rows}
    try:
        table = {str(k): int(v) for k, v in table.items()}
    except (TypeError, ValueError) as e:
        raise ValueError(f"folds: every fold must be an integer 1-3 ({e}).") from None
    bad = {k: v for k, v in table.items() if v not in (*TRAIN_FOLDS, TEST_FOLD)}
    if bad:
        raise ValueError(f"folds: BraTS folds are 1, 2 and 3; got {dict(list(bad.items())[:5])}.")
    return table


def brain_split(case_ids: Sequence[str], folds=None, seed: int = SPLIT_SEED,
                val_fraction: float = VAL_FRACTION) -> tuple[dict[str, str], dict[str, int], dict]:
    """The BMS split of docs/method.md §5.1.

    Args:
        case_ids: the labelled cases.
        folds: {case: fold} or a CSV/JSON file of it (folds 1-3); None: three folds dealt with ``seed``.
        seed: shuffle seed (4 in the reference).
        val_fraction: share of folds 1+2 that validates (1/8 in the reference).

    Returns:
        ({case: section}, {case: fold}, a description of the split for the datalist file).
    """
    ordered = sorted(set(case_ids))
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected a value in (0, 1), got {val_fraction}.")
    if folds is None:
        fold_of = {case: fold + 1 for case, fold in assign_folds(ordered, 3, seed).items()}
        source = f"drawn: sorted case ids dealt into 3 folds with seed {seed} (no fold file given)"
    else:
        table = _read_folds(folds)
        missing = [c for c in ordered if c not in table]
        if missing:
            raise ValueError(f"folds: no fold for {len(missing)} case(s) ({', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}).")
        fold_of = {c: table[c] for c in ordered}
        source = "given" if isinstance(folds, Mapping) else f"given: {os.path.basename(os.fspath(folds))}"
    pool = [c for c in ordered if fold_of[c] in TRAIN_FOLDS]
    shuffled = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    n_val = int(round(val_fraction * len(shuffled)))
    if n_val == 0 and len(shuffled) > 1:
        n_val = 1
    section = {c: "test" for c in ordered if fold_of[c] == TEST_FOLD}
    section.update({c: "validation" for c in shuffled[:n_val]})
    section.update({c: "training" for c in shuffled[n_val:]})
    description = {"kind": "brats_folds", "folds": source, "train_folds": list(TRAIN_FOLDS), "test_fold": TEST_FOLD,
                   "seed": seed, "val_fraction": val_fraction}
    return {c: section[c] for c in ordered}, fold_of, description


def _header(path: str, case: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"case {case!r}: {path} does not exist.")
    try:
        return nib.load(path)
    except Exception as e:  # noqa: BLE001 (nibabel raises several types for a broken file)
        raise ValueError(f"case {case!r}: could not read {path} ({e}).") from None


def check_brain_case(case: str, images: Sequence[str], label: str | None, patch_size: Sequence[int],
                     label_values: Sequence[int] = BRATS_LABELS, atol: float = 1e-3):
    """Check one case from its headers and its label's values; raise ValueError naming the case.

    Checks: four MRI channels (one 4D file or four 3D files), one grid for all of them (shape and
    affine), a label on the same grid with values in ``label_values`` and some tumour, and a volume
    at least ``patch_size`` along every axis.

    Returns:
        the label array (None without a label), so a caller that converts it reads it once.
    """
    files = [_header(p, case) for p in images]
    shapes = [tuple(int(s) for s in f.shape) for f in files]
    if len(files) == 1:
        if len(shapes[0]) != 4 or shapes[0][3] != len(MODALITIES):
            raise ValueError(f"case {case!r}: {images[0]} has shape {shapes[0]}; expected a 4D volume with "
                             f"{len(MODALITIES)} channels ({', '.join(MODALITIES)}).")
        spatial = shapes[0][:3]
    else:
        if len(files) != len(MODALITIES) or any(len(s) != 3 for s in shapes):
            raise ValueError(f"case {case!r}: expected {len(MODALITIES)} 3D volumes ({', '.join(MODALITIES)}), "
                             f"got shapes {shapes}.")
        spatial = shapes[0]
    for path, f, shape in zip(images, files, shapes):
        if shape[:3] != spatial or not np.allclose(f.affine, files[0].affine, atol=atol):
            raise ValueError(f"case {case!r}: {path} (shape {shape[:3]}) is not on the grid of {images[0]} "
                             f"(shape {spatial}); the modalities must be co-registered on one grid.")
    small = [int(p) for p in patch_size]
    if any(s < p for s, p in zip(spatial, small)):
        raise ValueError(f"case {case!r}: the volume {spatial} is smaller than the training patch {tuple(small)}.")
    if label is None:
        return None
    seg = _header(label, case)
    if tuple(seg.shape[:3]) != spatial or len(seg.shape) != 3:
        raise ValueError(f"case {case!r}: label {label} has shape {tuple(seg.shape)}, its image {spatial}.")
    if not np.allclose(seg.affine, files[0].affine, atol=atol):
        raise ValueError(f"case {case!r}: label {label} has another affine than its image {images[0]}:\n"
                         f"{np.round(seg.affine, 4)}\nvs\n{np.round(files[0].affine, 4)}")
    values = np.asarray(seg.dataobj)
    found = np.unique(values)
    unexpected = sorted(set(found.tolist()) - set(label_values))
    if unexpected:
        raise ValueError(f"case {case!r}: label {label} holds values {unexpected}; expected {list(label_values)}.")
    if not (found != 0).any():
        raise ValueError(f"case {case!r}: label {label} is empty (no tumour voxel); remove the case or fix its label.")
    return values


def _write_label(path: str, values: np.ndarray, like) -> None:
    image = nib.Nifti1Image(values.astype(np.uint8), like.affine, like.header)
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1, 0)
    write_atomic(path, lambda stream: stream.write(gzip.compress(image.to_bytes(), compresslevel=1)))


def _relative(path: str, root: str) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(root)).replace(os.sep, "/")


def _decathlon_cases(root: str, meta: dict) -> tuple[dict[str, dict], dict, list[str]]:
    names = [str(meta.get("modality", {}).get(str(i), "")).lower() for i in range(len(MODALITIES))]
    if names != [m.lower() for m in MODALITIES]:
        raise ValueError(f"{root}/dataset.json: modalities {meta.get('modality')} are not {list(MODALITIES)} "
                         "in this order (Task01_BrainTumour).")
    mapping = decathlon_label_map(meta.get("labels", {}))
    cases = {}
    for entry in meta.get("training", []):
        image = os.path.normpath(os.path.join(root, entry["image"]))
        case = os.path.basename(image).split(".nii")[0]
        if case.startswith("."):
            continue
        cases[case] = {"image": [image], "label": os.path.normpath(os.path.join(root, entry["label"]))}
    unlabelled = [os.path.normpath(os.path.join(root, p if isinstance(p, str) else p["image"]))
                  for p in meta.get("test", [])]
    return cases, mapping, unlabelled


def make_brain_datalist(dataset_dir: str | os.PathLike, output_json: str | os.PathLike | None = None,
                        folds=None, seed: int = SPLIT_SEED, val_fraction: float = VAL_FRACTION,
                        patch_size: Sequence[int] = (64, 64, 32), overwrite: bool = False,
                        progress: bool = True) -> dict:
    """Check a brain tumour dataset and write its datalist with the split of docs/method.md §5.1.

    Args:
        dataset_dir: a Decathlon ``Task01_BrainTumour`` folder (with ``dataset.json``) or a folder of
            BraTS patient folders.
        output_json: the datalist to write; default ``<dataset_dir>/datalist.json``. Its paths are
            relative to ``dataset_dir``, as the bundle's ``dataset_dir`` + ``datalist`` keys read them.
        folds: fold file (CSV ``case,fold`` or JSON, folds 1-3) or dict; None draws three folds (seed).
        seed: split seed (4, as the reference).
        val_fraction: validation share of folds 1+2 (1/8, as the reference).
        patch_size: the training patch; a smaller volume is an error.
        overwrite: replace an existing datalist that differs; otherwise that is an error, so a split
            is never recomputed silently.
        progress: show a progress bar.

    Returns:
        the datalist (sections "training", "validation", "test"; "unlabelled" for cases without labels).
    """
    from tqdm import tqdm

    root = os.path.abspath(os.fspath(dataset_dir))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset_dir '{root}' is not a folder.")
    output_json = os.path.abspath(os.fspath(output_json)) if output_json else os.path.join(root, "datalist.json")
    meta_path = os.path.join(root, "dataset.json")
    if output_json == meta_path:
        raise ValueError(f"{output_json}: would overwrite the Decathlon's own dataset.json; choose another name.")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        cases, mapping, unlabelled = _decathlon_cases(root, meta)
        layout, source_values = "decathlon_task01", sorted(mapping)
    else:
        found = find_brats_cases(root)
        cases = {c: v for c, v in found.items() if v["label"]}
        unlabelled = [v["image"] for v in found.values() if not v["label"]]
        layout, mapping, source_values = "brats", None, list(BRATS_LABELS)
    if not cases:
        raise ValueError(f"{root}: no labelled case (the datalist needs labels to train).")
    section_of, fold_of, split = brain_split(list(cases), folds, seed, val_fraction)

    sections: dict[str, list] = {name: [] for name in SECTIONS}
    for case in tqdm(sorted(cases), desc="checking cases", disable=not progress):
        entry = cases[case]
        values = check_brain_case(case, entry["image"], entry["label"], patch_size, source_values)
        label = entry["label"]
        if mapping is not None:  # the Decathlon's label values, converted once into BraTS values
            label = os.path.join(root, "labels_brats", f"{case}.nii.gz")
            lut = np.zeros(max(mapping) + 1, np.uint8)
            for source, target in mapping.items():
                lut[source] = target
            _write_label(label, lut[values], nib.load(entry["label"]))
        item = {"case": case, "fold": fold_of[case], "image": [_relative(p, root) for p in entry["image"]],
                "label": _relative(label, root)}
        if len(item["image"]) == 1:
            item["image"] = item["image"][0]
        sections[section_of[case]].append(item)
    datalist = {"name": os.path.basename(root), "layout": layout, "modalities": list(MODALITIES),
                "labels": {"0": "background", "1": "necrotic / non-enhancing tumour core", "2": "oedema",
                           "4": "enhancing tumour"},
                **({"source_labels": {str(k): v for k, v in mapping.items()}} if mapping else {}),
                "split": split, **sections,
                "unlabelled": [{"image": _relative(p, root) if isinstance(p, str) else [_relative(q, root) for q in p]}
                               for p in unlabelled],
                "numTraining": len(sections["training"]), "numValidation": len(sections["validation"]),
                "numTest": len(sections["test"])}
    if os.path.isfile(output_json) and not overwrite:
        with open(output_json) as f:
            existing = json.load(f)
        if existing != json.loads(json.dumps(datalist)):
            raise ValueError(f"{output_json} exists with another content (split {existing.get('split')}); "
                             "pass overwrite=True (--overwrite) to replace it, or write elsewhere.")
        return existing
    write_json_atomic(datalist, output_json)
    return datalist


def brain_inference_data(dataset_dir: str | os.PathLike, datalist: str | os.PathLike | None = "",
                         section: str = "test") -> list[dict]:
    """The images to segment: a datalist's ``section`` when ``datalist`` is set (paths relative to
    ``dataset_dir``), else every NIfTI file directly in ``dataset_dir`` (one 4D four-modality
    volume, or a volume of the one chosen modality) and every BraTS patient folder below it.
    """
    from monai_genesis.data.segmentation import load_segmentation_datalist

    if datalist:
        return load_segmentation_datalist(datalist, section, base_dir=dataset_dir, label_key=None)
    root = os.fspath(dataset_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset_dir '{root}' is not a folder of MRI volumes.")
    items = [{"image": os.path.join(root, f)} for f in sorted(os.listdir(root))
             if not f.startswith(".") and _nifti_stem(f) and os.path.isfile(os.path.join(root, f))]
    if any(os.path.isdir(os.path.join(root, f)) for f in os.listdir(root)) or not items:
        try:
            items += [{"image": case["image"]} for _, case in sorted(find_brats_cases(root).items())]
        except ValueError:
            if not items:
                raise ValueError(f"{root}: no NIfTI volume and no BraTS patient folder to segment.") from None
    return items


def _name_of(data: Mapping, key: str) -> str:
    value = data.get(key)
    meta = getattr(value, "meta", None) or data.get(f"{key}_meta_dict") or {}
    return str(meta.get("filename_or_obj", key))


class SelectModalitiesd(MapTransform):
    """Keep the chosen MRI channels of a four-channel image (channel first), failing clearly on another count.

    A one-channel image passes unchanged when one modality is chosen, so single-contrast studies
    (a FLAIR volume in MONAI Label) can be segmented by the FLAIR model.

    Args:
        keys: image keys.
        modalities: names from :data:`MODALITIES` ("FLAIR" by default: the whole tumour from FLAIR).
    """

    def __init__(self, keys: KeysCollection, modalities: Sequence[str] | str = ("FLAIR",), allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.indices = modality_indices(modalities)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            if image.ndim == 4 and image.shape[0] == 1 and len(self.indices) == 1:
                continue  # a one-modality study (e.g. FLAIR only) is taken as the chosen modality
            if image.ndim != 4 or image.shape[0] != len(MODALITIES):
                raise ValueError(f"{_name_of(d, key)}: expected {len(MODALITIES)} MRI channels "
                                 f"({', '.join(MODALITIES)}) after loading, got an array of shape {tuple(image.shape)}.")
            d[key] = image[self.indices]
        return d


class BratsTargetd(MapTransform):
    """BraTS labels (0, 1, 2, 4) -> the training target: the whole tumour (one channel) or the three
    sub-regions (tumour core, whole tumour, enhancing tumour; MONAI ``ConvertToMultiChannelBasedOnBratsClasses``).

    A label with any other value fails, naming its file (Decathlon labels are converted by
    ``genesis brain-datalist``). Shape and affine are checked before, by ``CheckSegmentationCased``.

    Args:
        keys: label keys (channel first, one channel).
        target: "whole_tumour" or "subregions".
    """

    def __init__(self, keys: KeysCollection, target: str = "whole_tumour", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        target_channels(target)
        self.target = target
        self.regions = ConvertToMultiChannelBasedOnBratsClasses()

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            if label.ndim != 4 or label.shape[0] != 1:
                raise ValueError(f"{_name_of(d, key)}: expected a one-channel label map, got shape {tuple(label.shape)}.")
            unexpected = sorted(set(int(v) for v in torch.unique(torch.as_tensor(label)).tolist()) - set(BRATS_LABELS))
            if unexpected:
                raise ValueError(f"{_name_of(d, key)}: label values {unexpected} are not BraTS labels {list(BRATS_LABELS)}; "
                                 "the Decathlon's labels are converted by `genesis brain-datalist`.")
            if self.target == "whole_tumour":
                d[key] = (label > 0).to(torch.float32)
            else:
                d[key] = self.regions(label[0]).to(torch.float32)
        return d


class BratsRegionsToLabeld(MapTransform):
    """Binary sub-region masks (tumour core, whole tumour, enhancing tumour) -> one BraTS label map
    (4 enhancing, 1 rest of the core, 2 rest of the whole tumour), for a NIfTI mask MONAI Label can show.

    A whole-tumour prediction (one channel) passes as 0/1.
    """

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            masks = d[key]
            if masks.shape[0] == 1:
                d[key] = masks.to(torch.uint8) if isinstance(masks, torch.Tensor) else masks.astype(np.uint8)
                continue
            core, whole, enhancing = (masks[i] > 0 for i in range(3))
            label = torch.zeros_like(masks[:1], dtype=torch.uint8)  # a MetaTensor keeps its geometry
            label[0][whole | core | enhancing] = 2
            label[0][core | enhancing] = 1
            label[0][enhancing] = 4
            d[key] = label
        return d
