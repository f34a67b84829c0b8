"""Small seeded checkpoints in every format users load, for offline compatibility tests.

:func:`write_tiny_bert_checkpoint` writes a small randomly initialised (but
seeded) BERT with its WordPiece tokenizer, which :class:`~latecore.encoder.Encoder`
loads as a zero-shot ColBERT. :func:`write_checkpoint` builds on it and writes
one of :data:`CHECKPOINT_FORMATS`, each a directory that
:class:`~latecore.encoder.Encoder` loads without a hub, with its own markers,
lengths and projection size, chosen to differ from latecore's and pylate's
defaults so that a test can tell the checkpoint's values from fallbacks. The
settings written are returned as a :class:`CheckpointSpec`. The same seed
writes byte-identical files in every process.

Formats:

- ``stanford``: ColBERTv2 layout (``HF_ColBERT`` architecture, ``bert.*`` and
  ``linear.weight`` in one safetensors file, settings in ``artifact.metadata``,
  ``[unused0]``/``[unused1]`` markers).
- ``sentence-transformers``: ``modules.json`` with a Transformer and a ``1_Dense``
  projection to 96 dims, settings in ``config_sentence_transformers.json``
  (the layout of answerai-colbert-small-v1).
- ``pylate-modernbert``: a ModernBERT ColBERT saved by pylate itself.
- ``xlm-roberta``: an XLM-RoBERTa ColBERT with a multilingual Unigram tokenizer
  over a fixed vocabulary (built from the corpus, no trainer) and
  ``[QueryMarker]``/``[DocumentMarker]`` markers.
- ``plain-bert``: a BERT encoder without any ColBERT head (zero-shot path).

The vocabulary of the tiny tokenizers is the word list in ``data/tiny_words.txt``.
torch, transformers, tokenizers, safetensors and pylate are imported by the
writers, not by this module.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..encoder import ZERO_SHOT_QUERY_LENGTH
from .seeding import seeded_generator, seeded_torch

__all__ = ["CHECKPOINT_FORMATS", "CheckpointSpec", "write_checkpoint", "write_tiny_bert_checkpoint"]

CHECKPOINT_FORMATS = (
    "stanford",
    "sentence-transformers",
    "pylate-modernbert",
    "xlm-roberta",
    "plain-bert",
)

_MULTILINGUAL_CORPUS = [
    "the capital of france is paris and the river is the seine",
    "where is the city of berlin in germany",
    "столица россии москва а река называется волга",
    "где находится город санкт петербург",
    "北京是中国的首都 长江是最长的河流",
    "东京是日本的首都 富士山很高",
    "القاهرة عاصمة مصر ونهر النيل طويل",
    "أين تقع مدينة الرياض",
    "la capitale de l'italie est rome",
    "cats purr and dogs bark at the mailman",
]


@dataclass(frozen=True)
class CheckpointSpec:
    """What a fixture checkpoint declares, for tests to compare against what is detected."""

    format: str
    path: Path
    query_prefix: str
    document_prefix: str
    query_length: int
    document_length: int
    do_query_expansion: bool
    dim: int
    has_colbert_head: bool
    mask_token: str


def _save_safetensors(tensors: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")


def _dense_weight(out_features: int, in_features: int, seed: int) -> Any:
    import torch

    weight = torch.randn(out_features, in_features, generator=seeded_generator(seed))
    return weight / in_features**0.5


@functools.cache
def _tiny_words() -> tuple[str, ...]:
    """The whole words of the tiny vocabularies (``data/tiny_words.txt``, one per line)."""
    text = (resources.files("latecore.testing") / "data" / "tiny_words.txt").read_text("utf-8")
    return tuple(word for word in (line.strip() for line in text.splitlines()) if word)


def write_tiny_bert_checkpoint(
    directory: str | os.PathLike[str],
    *,
    seed: int = 0,
    hidden_size: int = 32,
    with_unused_tokens: bool = True,
) -> Path:
    """Write a small seeded random BERT encoder and its WordPiece tokenizer to ``directory``.

    The checkpoint has no ColBERT head, so :class:`~latecore.encoder.Encoder`
    loads it as a zero-shot ColBERT. The same ``seed`` writes byte-identical
    weights in every process.

    Parameters
    ----------
    directory
        Where to write ``config.json``, ``model.safetensors`` and the tokenizer.
    seed
        Seed of the weight initialisation; different seeds give different models.
    hidden_size
        Width of the model (and of its zero-shot ColBERT vectors).
    with_unused_tokens
        Include ``[unused0]``/``[unused1]`` in the vocabulary (as BERT's does).

    Returns
    -------
    pathlib.Path
        ``directory``.
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    unused = ["[unused0]", "[unused1]"] if with_unused_tokens else []
    characters = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    )
    pieces = ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + ["##s", "##ing", "##ed"]
    vocab = list(dict.fromkeys(specials + unused + characters + list(_tiny_words()) + pieces))
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=512,
    )
    with seeded_torch(seed):
        model = BertModel(config)
    model.save_pretrained(str(path), safe_serialization=True)
    return path


def _stanford(path: Path, seed: int) -> CheckpointSpec:
    from safetensors.torch import load_file

    write_tiny_bert_checkpoint(path, seed=seed)
    weights = load_file(str(path / "model.safetensors"))
    tensors = {f"bert.{name}": tensor for name, tensor in weights.items()}
    tensors["linear.weight"] = _dense_weight(24, 32, seed + 1)
    _save_safetensors(tensors, path / "model.safetensors")
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["HF_ColBERT"]
    _write_json(path / "config.json", config)
    metadata = {
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "query_maxlen": 24,
        "doc_maxlen": 100,
        "dim": 24,
        "attend_to_mask_tokens": False,
        "similarity": "cosine",
    }
    _write_json(path / "artifact.metadata", metadata)
    return CheckpointSpec(
        "stanford", path, "[unused0]", "[unused1]", 24, 100, True, 24, True, "[MASK]"
    )


def _sentence_transformers(path: Path, seed: int) -> CheckpointSpec:
    write_tiny_bert_checkpoint(path, seed=seed)
    dense = path / "1_Dense"
    dense.mkdir()
    _write_json(
        dense / "config.json",
        {
            "in_features": 32,
            "out_features": 96,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
        },
    )
    _save_safetensors(
        {"linear.weight": _dense_weight(96, 32, seed + 1)}, dense / "model.safetensors"
    )
    _write_json(
        path / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Dense",
                "type": "sentence_transformers.models.Dense",
            },
        ],
    )
    _write_json(path / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    _write_json(
        path / "config_sentence_transformers.json",
        {
            "query_prefix": "[unused0]",
            "document_prefix": "[unused1]",
            "query_length": 20,
            "document_length": 120,
            "do_query_expansion": True,
            "attend_to_expansion_tokens": False,
            "similarity_fn_name": "MaxSim",
        },
    )
    return CheckpointSpec(
        "sentence-transformers", path, "[unused0]", "[unused1]", 20, 120, True, 96, True, "[MASK]"
    )


def _word_level(specials: list[str], words: list[str], unk_token: str = "[UNK]") -> Any:
    """A lowercasing word-level ``tokenizers.Tokenizer`` over ``specials`` then ``words``
    (each once, in that order), splitting as BERT does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {token: i for i, token in enumerate(dict.fromkeys(specials + words))}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk_token))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def _wordlevel_tokenizer(specials: list[str], words: list[str]) -> Any:
    from tokenizers import processors

    tokenizer = _word_level(specials, words)
    vocab = tokenizer.get_vocab()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer


def _pylate_save(
    base: Path,
    path: Path,
    seed: int,
    *,
    dim: int,
    query_prefix: str,
    document_prefix: str,
    query_length: int,
    document_length: int,
) -> None:
    from pylate.models import ColBERT

    with seeded_torch(seed):
        model = ColBERT(
            str(base),
            device="cpu",
            embedding_size=dim,
            query_prefix=query_prefix,
            document_prefix=document_prefix,
            query_length=query_length,
            document_length=document_length,
            do_query_expansion=True,
        )
    model.save(str(path))


def _modernbert(path: Path, seed: int) -> CheckpointSpec:
    from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast

    base = path.parent / f".{path.name}-base"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[Q] ", "[D] "]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_wordlevel_tokenizer(specials, list(_tiny_words()) + list(".,?!'")),
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    tokenizer.save_pretrained(str(base))
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        global_attn_every_n_layers=1,
        local_attention=16,
    )
    with seeded_torch(seed):
        ModernBertModel(config).save_pretrained(str(base), safe_serialization=True)
    _pylate_save(
        base,
        path,
        seed,
        dim=48,
        query_prefix="[Q] ",
        document_prefix="[D] ",
        query_length=28,
        document_length=90,
    )
    return CheckpointSpec(
        "pylate-modernbert", path, "[Q] ", "[D] ", 28, 90, True, 48, True, "[MASK]"
    )


_METASPACE = "\u2581"  # "▁", which the Metaspace pre-tokenizer puts before every word


def _multilingual_unigram_vocab(specials: list[str]) -> list[tuple[str, float]]:
    """A fixed Unigram vocabulary over the multilingual corpus: ``(piece, score)``, sorted.

    The pieces are every character of the corpus (and its upper case), every
    word and every two-character piece inside a word (words start with ``▁``);
    a piece's score is the log of its smoothed frequency in the corpus, so a
    whole word outscores its characters. Built from sorted sets and integer
    counts, not by a trainer, so every process builds the same list: the
    specials first, in order, then the pieces by score, ties by text.

    Examples
    --------
    >>> vocab = _multilingual_unigram_vocab(["<unk>"])
    >>> vocab[0], vocab == _multilingual_unigram_vocab(["<unk>"])
    (('<unk>', 0.0), True)
    >>> scores = dict(vocab)
    >>> scores["\u2581paris"] > scores["\u2581p"] + scores["a"]
    True
    """
    words = [_METASPACE + word for line in _MULTILINGUAL_CORPUS for word in line.split()]
    characters = {c for word in words for c in word}
    pieces = characters | {c.upper() for c in characters} | set(words)
    pieces |= {word[i : i + 2] for word in words for i in range(len(word) - 1)}
    text = "".join(words)
    total = len(text) + len(pieces)
    scored = [(piece, math.log((text.count(piece) + 1) / total)) for piece in sorted(pieces)]
    scored.sort(key=lambda item: (-item[1], item[0]))
    return [(special, 0.0) for special in specials] + scored


def _xlm_roberta(path: Path, seed: int) -> CheckpointSpec:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    base = path.parent / f".{path.name}-base"
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "[QueryMarker]", "[DocumentMarker]"]
    vocab = _multilingual_unigram_vocab(specials)
    unigram = Tokenizer(models.Unigram(vocab, unk_id=specials.index("<unk>")))
    unigram.add_special_tokens(specials)
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.decoder = decoders.Metaspace()
    unigram.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        special_tokens=[("<s>", unigram.token_to_id("<s>")), ("</s>", unigram.token_to_id("</s>"))],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=unigram,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=512,
    )
    tokenizer.save_pretrained(str(base))
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=520,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with seeded_torch(seed):
        XLMRobertaModel(config).save_pretrained(str(base), safe_serialization=True)
    _pylate_save(
        base,
        path,
        seed,
        dim=64,
        query_prefix="[QueryMarker]",
        document_prefix="[DocumentMarker]",
        query_length=32,
        document_length=64,
    )
    return CheckpointSpec(
        "xlm-roberta", path, "[QueryMarker]", "[DocumentMarker]", 32, 64, True, 64, True, "<mask>"
    )


def _plain_bert(path: Path, seed: int) -> CheckpointSpec:
    write_tiny_bert_checkpoint(path, seed=seed)
    # zero-shot: markers from unused entries, latecore's zero-shot query length and pylate's
    # document length, no expansion, identity projection
    return CheckpointSpec(
        "plain-bert",
        path,
        "[unused0]",
        "[unused1]",
        ZERO_SHOT_QUERY_LENGTH,
        180,
        False,
        32,
        False,
        "[MASK]",
    )


_WRITERS = {
    "stanford": _stanford,
    "sentence-transformers": _sentence_transformers,
    "pylate-modernbert": _modernbert,
    "xlm-roberta": _xlm_roberta,
    "plain-bert": _plain_bert,
}


def write_checkpoint(
    format: str, directory: str | os.PathLike[str], *, seed: int = 0
) -> CheckpointSpec:
    """Write a small seeded checkpoint of ``format`` (one of :data:`CHECKPOINT_FORMATS`).

    Returns
    -------
    CheckpointSpec
        The markers, lengths, expansion setting and output dimension written.

    Raises
    ------
    ValueError
        For a format not in :data:`CHECKPOINT_FORMATS`.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     spec = write_checkpoint("plain-bert", Path(tmp) / "bert")
    >>> spec.query_prefix, spec.document_prefix, spec.dim, spec.has_colbert_head
    ('[unused0]', '[unused1]', 32, False)
    """
    if format not in _WRITERS:
        raise ValueError(f"unknown checkpoint format {format!r}; choose from {CHECKPOINT_FORMATS}")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return _WRITERS[format](path, seed)
