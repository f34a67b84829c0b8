"""Finding a checkpoint on disk and reading what kind of model it is, before loading it.

Everything here reads JSON and hashes bytes; nothing is imported from, executed
or unpickled out of the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

__all__ = ["CheckpointInfo", "inspect_checkpoint", "resolve_checkpoint"]

# Files whose bytes determine the vectors: weights, tokenizer, configs of every module.
_HASHED_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".metadata")
_IGNORED_DIRS = {"onnx", "openvino", ".git", ".cache"}
_HUB_IGNORE = ["onnx/*", "openvino/*", "*.onnx", "*.msgpack", "*.h5", "*.ot", "tf_model*", "flax*"]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint directory holds, read from its files."""

    path: Path
    model_id: str
    revision: str | None
    content_hash: str
    format: str
    has_colbert_head: bool
    hidden_size: int | None
    vocab_size: int | None
    max_positions: int | None
    needs_remote_code: bool
    vocab: frozenset[str] = field(repr=False, default=frozenset())


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _hashed_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS)
        for name in sorted(filenames):
            if name.endswith(_HASHED_SUFFIXES) and name != "README.md":
                files.append(Path(dirpath) / name)
    return files


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
    cached = _HASH_MEMO.get(memo_key)
    if cached is None:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        cached = _HASH_MEMO[memo_key] = digest.hexdigest()
    return cached


def content_hash(root: Path) -> str:
    """SHA-256 over the relative names and contents of a checkpoint's weight, tokenizer and
    config files (memoised per file on size and modification time)."""
    digest = hashlib.sha256()
    for path in _hashed_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(_file_digest(path).encode() + b"\n")
    return digest.hexdigest()


def resolve_checkpoint(
    model: str | os.PathLike[str], revision: str | None = None
) -> tuple[Path, str, str | None]:
    """Local directory, display id and resolved revision (commit) of ``model``.

    A local directory is used as it is. Anything else is taken as a Hugging Face
    Hub id and fetched into (or read from) the local Hub cache.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve(), str(model), None
    if path.exists() or str(model).startswith(("/", "./", "../", "~")):
        raise ModelLoadError(
            f"model path {str(model)!r} is not an existing checkpoint directory. Pass the "
            "directory that holds config.json and the weights."
        )
    try:
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(str(model), revision=revision, ignore_patterns=_HUB_IGNORE))
    except Exception as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
        reason = "the Hugging Face Hub is disabled (HF_HUB_OFFLINE)" if offline else str(error)
        raise ModelLoadError(
            f"could not fetch model {str(model)!r}: {reason}. Either connect to the Hub once "
            "so it is cached, or pass a local checkpoint directory instead, e.g. "
            "Encoder('/path/to/model') or LATECORE_MODEL=/path/to/model."
        ) from error
    return local.resolve(), str(model), local.name


def _tokenizer_vocab(root: Path) -> frozenset[str]:
    vocab_txt = root / "vocab.txt"
    if vocab_txt.is_file():
        with open(vocab_txt, encoding="utf-8") as f:
            return frozenset(line.rstrip("\n") for line in f)
    tokenizer = _read_json(root / "tokenizer.json")
    if isinstance(tokenizer, dict):
        vocab = tokenizer.get("model", {}).get("vocab")
        if isinstance(vocab, dict):
            return frozenset(vocab)
        if isinstance(vocab, list):
            return frozenset(entry[0] for entry in vocab if isinstance(entry, list) and entry)
    return frozenset()


def _dense_dirs(root: Path) -> list[Path]:
    modules = _read_json(root / "modules.json")
    if not isinstance(modules, list):
        return []
    return [
        root / str(m.get("path", ""))
        for m in modules
        if isinstance(m, dict) and "Dense" in str(m.get("type", ""))
    ]


def _dense_types(root: Path) -> set[str]:
    """Which library's Dense class each projection module names: ``pylate`` or another."""
    modules = _read_json(root / "modules.json") or []
    return {
        "pylate" if str(m.get("type", "")).startswith("pylate.") else "other"
        for m in modules
        if isinstance(m, dict) and "Dense" in str(m.get("type", ""))
    }


def _check_safe(root: Path, dense_dirs: list[Path], allow_unsafe: bool) -> None:
    if allow_unsafe:
        return
    for dense in dense_dirs:
        config = _read_json(dense / "config.json") or {}
        activation = str(config.get("activation_function", "torch.nn.modules.linear.Identity"))
        if not activation.startswith("torch."):
            raise ModelLoadError(
                f"{dense / 'config.json'} names the activation {activation!r}, which is not a "
                "torch module; loading it would import and call arbitrary code. Refused. "
                "Pass allow_unsafe_checkpoint=True only for a checkpoint you trust."
            )
    weights = [p for p in root.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt")]
    if weights and not any(p.suffix == ".safetensors" for p in weights):
        raise ModelLoadError(
            f"{root} carries its weights only as pickle files ({weights[0].name}); unpickling "
            "them can run arbitrary code. Convert them to safetensors, or pass "
            "allow_unsafe_checkpoint=True for a checkpoint you trust."
        )


def inspect_checkpoint(
    model: str | os.PathLike[str],
    revision: str | None = None,
    *,
    allow_unsafe: bool = False,
) -> CheckpointInfo:
    """Resolve ``model`` to a directory and read its format and whether it has a ColBERT head."""
    path, model_id, resolved = resolve_checkpoint(model, revision)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} has no config.json; it is not a transformers checkpoint")
    config = _read_json(path / "config.json") or {}
    architectures = config.get("architectures") or []
    dense_dirs = _dense_dirs(path)
    _check_safe(path, dense_dirs, allow_unsafe)
    if architectures and architectures[0] == "HF_ColBERT":
        fmt, head = "stanford", True
    elif dense_dirs:
        fmt, head = (
            ("pylate" if _dense_types(path) <= {"pylate"} else "sentence-transformers"),
            True,
        )
    else:
        fmt, head = "plain-encoder", False
    hidden = config.get("hidden_size") or config.get("d_model") or config.get("dim")
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    return CheckpointInfo(
        path=path,
        model_id=model_id,
        revision=resolved,
        content_hash=content_hash(path),
        format=fmt,
        has_colbert_head=head,
        hidden_size=int(hidden) if hidden else None,
        vocab_size=int(config["vocab_size"]) if config.get("vocab_size") else None,
        max_positions=int(positions) if positions else None,
        needs_remote_code="auto_map" in config,
        vocab=_tokenizer_vocab(path),
    )
