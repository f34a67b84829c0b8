"""latecore: late-interaction (ColBERT) retrieval and reranking for RAG pipelines.

One core does encoding (through pylate), persistent caching of document
multivectors (through diskcache) and exact MaxSim scoring; the LangChain and
LlamaIndex integrations are thin adapters over it. Searching goes through one
seam, :class:`Searcher`, which :class:`LateIndex` (a document store plus a
candidate backend) and :class:`HybridSearcher` (BM25 plus a ``LateIndex``)
implement and the adapters consume.
"""

from __future__ import annotations

from .base_encoder import BaseEncoder, EncodeStats
from .cache import CacheStats, MultivectorCache, cache_key
from .caches import DocumentCache, open_cache
from .encoder import Encoder, load_encoder
from .errors import (
    EngineOwnershipError,
    FingerprintMismatchError,
    IndexChangedError,
    IndexFormatError,
    InputError,
    LatecoreError,
    LatecoreWarning,
    ModelLoadError,
    ZeroShotWarning,
)
from .evaluate import Evaluation, compare, evaluate
from .explain import explain, highlight
from .hybrid import HybridSearcher
from .index import LateIndex
from .maxsim import maxsim, maxsim_batch
from .models import DEFAULT_MODEL
from .redis_cache import RedisCache
from .reranker import Reranker
from .results import HybridHit, RerankResult, SearchHit
from .searcher import Searcher
from .store import MemoryStore

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "BaseEncoder",
    "CacheStats",
    "DocumentCache",
    "EncodeStats",
    "Encoder",
    "EngineOwnershipError",
    "Evaluation",
    "FingerprintMismatchError",
    "HybridHit",
    "HybridSearcher",
    "IndexChangedError",
    "IndexFormatError",
    "InputError",
    "LateIndex",
    "LatecoreError",
    "LatecoreWarning",
    "MemoryStore",
    "ModelLoadError",
    "MultivectorCache",
    "RedisCache",
    "RerankResult",
    "Reranker",
    "SearchHit",
    "Searcher",
    "ZeroShotWarning",
    "__version__",
    "cache_key",
    "compare",
    "evaluate",
    "explain",
    "highlight",
    "load_encoder",
    "maxsim",
    "maxsim_batch",
    "open_cache",
]
