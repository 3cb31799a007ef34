"""The teacher-ensemble cache (paper Sec. 3.2): ensemble mean/variance and panel feature statistics per item."""

from .build import CacheConfig, build_cache, cache_info, finalize_cache, shard_from_env, verify_cache
from .dataset import CacheDataset
from .folders import build_cache_from_folders
from .store import CacheError

__all__ = [
    "CacheConfig",
    "CacheDataset",
    "CacheError",
    "build_cache",
    "build_cache_from_folders",
    "cache_info",
    "finalize_cache",
    "shard_from_env",
    "verify_cache",
]
