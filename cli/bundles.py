"""`genesis bundles` (the bundles this package ships) and `genesis bundle-copy NAME DIR` (one of them, to a folder).

    genesis bundles
    genesis bundle-copy genesis_lung_nodule_segmentation ~/bundles
    cd ~/bundles/genesis_lung_nodule_segmentation && python -m monai.bundle run --config_file configs/train.json ...
"""

from __future__ import annotations

__all__ = ["bundle_copy", "list_bundles_command"]


def list_bundles_command() -> None:
    """Print one line per bundle this package ships: name, version, task (from its configs/metadata.json)."""
    from monai_genesis.bundles import list_bundles

    bundles = list_bundles()
    width = max(len(b["name"]) for b in bundles)
    for b in bundles:
        print(f"{b['name']:<{width}}  {b['version']:<7}  {b['task']}")


def bundle_copy(name: str, dir: str) -> None:  # noqa: A002 (fire names the argument DIR)
    """Copy the bundle NAME to DIR/NAME, a complete bundle folder for `python -m monai.bundle run`.

    Args:
        name: a name that `genesis bundles` lists.
        dir: the folder to write NAME/ into (made if missing); DIR/NAME must not exist or be an empty folder.
    """
    from monai_genesis.bundles import copy_bundle

    target = copy_bundle(str(name), dir)
    print(f"{target}: copied; run it with: cd {target} && python -m monai.bundle run --config_file "
          "configs/train.json --dataset_dir <your data> (see docs/README.md)")
