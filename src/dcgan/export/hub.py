"""The Hugging Face Hub: a generator as a Hub-ready folder, pushed there, and read back from `hf://owner/name`.

A Hub folder holds `generator.safetensors` (the safetensors export, which every
dcgan command loads), `config.json` (the model config) and `README.md` (the
model card, behind the YAML front matter the Hub reads: library, tags, licence
and data set where known). `huggingface_hub` (the `hub` extra) does the network.

Nothing here writes into a run: `hub_files` returns the files' bytes, and the
CLI saves or uploads them.
"""

from __future__ import annotations

import json
import os

from ..checkpoint import HUB_PREFIX, Checkpoint, hub_reachable
from ..errors import ConfigError
from .formats import EXPORT_FORMATS

__all__ = ["HUB_FILES", "HUB_TAGS", "INSTALL_HINT", "hub_front_matter", "hub_files", "push_folder"]

HUB_CONFIG = "config.json"
HUB_README = "README.md"
HUB_FILES = (EXPORT_FORMATS["safetensors"].filename(), HUB_CONFIG, HUB_README)
HUB_TAGS = ("dcgan", "gan", "image-generation", "pytorch")
INSTALL_HINT = "pip install 'dcgan[hub]'"


def _yaml_text(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar, quoted and escaped


def hub_front_matter(card: dict, license: str | None = None) -> str:
    """The YAML block a Hub model card starts with: library_name, tags, and licence and data set where known."""
    training = card.get("training") or {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    dataset = data.get("name") if data else None
    lines = ["---", "library_name: dcgan", "tags:", *(f"- {tag}" for tag in HUB_TAGS)]
    if license:
        lines.append(f"license: {_yaml_text(license)}")
    if dataset:
        lines += ["datasets:", f"- {_yaml_text(str(dataset))}"]
    return "\n".join(lines + ["---", ""]) + "\n"


def hub_files(ckpt: Checkpoint, metrics: list[dict], raw: bool = False, license: str | None = None) -> list:
    """The three files of a Hub folder, built and checked like any export: [(name, bytes)] in HUB_FILES order.

    Raises RuntimeError if the safetensors file does not reproduce G (it is exact by construction).
    """
    from . import export_files

    files = {f.name: f for f in export_files(ckpt, ["safetensors"], metrics, raw=raw)}
    weights = files[HUB_FILES[0]]
    if not weights.passed:
        raise RuntimeError(f"{weights.name} does not reproduce the generator (max |diff| {weights.max_diff:.2e})")
    card = json.loads(files["model_card.json"].data)
    config = json.dumps(ckpt.model_config.to_dict(), indent=2) + "\n"
    readme = hub_front_matter(card, license) + files["MODEL_CARD.md"].data.decode()
    return [(HUB_FILES[0], weights.data), (HUB_CONFIG, config.encode()), (HUB_README, readme.encode())]


def push_folder(folder: str | os.PathLike, repo_id: str, private: bool = False) -> str:
    """Create `repo_id` on the Hub (if missing) and upload `folder` to it; returns the commit URL.

    Raises ConfigError in one line when huggingface_hub is missing, the repo id is
    malformed, or the Hub cannot be reached (offline, HF_HUB_OFFLINE, no token).
    """
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ConfigError(f"pushing to the Hub needs huggingface_hub (not installed): {INSTALL_HINT}") from None
    if repo_id.startswith(HUB_PREFIX):
        repo_id = repo_id[len(HUB_PREFIX) :]
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"REPO_ID {repo_id!r}: give it as owner/name")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ConfigError(f"could not reach the Hugging Face Hub to push {repo_id}: HF_HUB_OFFLINE is set")
    if not hub_reachable():  # huggingface_hub would retry a refused connection for ~20 s
        from huggingface_hub import constants

        raise ConfigError(f"could not reach the Hugging Face Hub ({constants.ENDPOINT}) to push {repo_id}")
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="Upload DCGAN generator with dcgan")
    except Exception as exc:  # offline, refused, unauthorised: huggingface_hub and httpx raise many types
        from ..errors import first_line

        raise ConfigError(f"could not push to the Hugging Face Hub repo {repo_id}: {first_line(exc)}") from None
    return str(getattr(info, "commit_url", info))
