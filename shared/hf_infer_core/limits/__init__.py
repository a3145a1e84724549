"""Limits: the local and Redis rate limiters, and the adaptive concurrency limit."""

from __future__ import annotations

from ._ratelimit import RateLimiter, RedisRateLimiter, shared_rate_limiter

__all__ = ["RateLimiter", "RedisRateLimiter", "shared_rate_limiter"]
