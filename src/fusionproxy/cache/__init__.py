"""The teacher-ensemble cache (paper Sec. 3.2): ensemble mean/variance and panel feature statistics per item."""

from .build import CacheConfig, build_cache, cache_info, finalize_cache, shard_from_env, verify_cache
from .dataset import CacheDataset
from .store import CacheError

__all__ = [
    "CacheConfig",
    "CacheDataset",
    "CacheError",
    "build_cache",
    "cache_info",
    "finalize_cache",
    "shard_from_env",
    "verify_cache",
]
