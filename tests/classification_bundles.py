"""Helpers shared by the classification bundle tests (NCC, ECC): workflows and the Model Zoo metadata checks."""

from __future__ import annotations

from pathlib import Path

from monai.bundle import ConfigWorkflow, verify_metadata, verify_net_in_out

SCHEMA = Path(__file__).resolve().parent / "fixtures" / "meta_schema_20220324.json"
SCHEMA_MD5 = "662135097106b71067cd1fc657f8720f"


def candidate_workflow(configs_dir: Path, configs, workflow_type: str, root: Path, data: Path, **settings) -> ConfigWorkflow:
    """An initialised workflow on ``data/prep`` (prepared volumes) and ``data/raw/candidates.csv``."""
    settings = {"bundle_root": str(root), "dataset_dir": str(data / "prep"),
                "candidates_csv": str(data / "raw" / "candidates.csv"), **settings}
    wf = ConfigWorkflow(config_file=[str(configs_dir / c) for c in configs], meta_file=str(configs_dir / "metadata.json"),
                        logging_file=False, workflow_type=workflow_type, **settings)
    wf.initialize()
    return wf


def check_metadata_and_network(configs_dir: Path, width: float) -> None:
    """metadata.json passes the Model Zoo schema and the inference network matches its declared inputs and outputs."""
    verify_metadata(meta_file=str(configs_dir / "metadata.json"), filepath=str(SCHEMA), hash_val=SCHEMA_MD5, hash_type="md5")
    verify_net_in_out(net_id="network_def", meta_file=str(configs_dir / "metadata.json"),
                      config_file=str(configs_dir / "inference.json"), device="cpu", **{"network_def#width": width})
