"""The named set_/get_ pairs of the six catalog views (the calls docs/catalog.md lists).

Thin, typed wrappers over ``CatalogCache.get``/``set``: with ``model`` a getter returns that
model (or None), without it the plain JSON value (or None).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from cache.catalog._entry import CatalogKind
from cache.service import TTL

M = TypeVar("M", bound=BaseModel)
Filters = Mapping[str, Any] | None

DASHBOARD = CatalogKind.DASHBOARD
DISCOVER = CatalogKind.DISCOVER
SEARCH = CatalogKind.SEARCH
WATCH_LATER = CatalogKind.WATCH_LATER
CONTINUE = CatalogKind.CONTINUE_WATCHING
RECOMMENDATIONS = CatalogKind.RECOMMENDATIONS


class CatalogViews(ABC):
    """``get_<view>``/``set_<view>`` for dashboard, discover, search results, watch later,
    continue watching and recommendations."""

    @abstractmethod
    async def get(
        self,
        kind: CatalogKind | str,
        *,
        user_id: str | None = None,
        section_id: str | None = None,
        query: str | None = None,
        filters: Filters = None,
        model: type[BaseModel] | None = None,
    ) -> Any: ...

    @abstractmethod
    async def set(
        self,
        kind: CatalogKind | str,
        value: Any,
        *,
        user_id: str | None = None,
        section_id: str | None = None,
        query: str | None = None,
        filters: Filters = None,
        ttl: TTL | None = None,
    ) -> None: ...

    # -- dashboard (per user, ttl.catalog) ----------------------------------------------
    @overload
    async def get_dashboard(self, user_id: str, model: type[M]) -> M | None: ...
    @overload
    async def get_dashboard(self, user_id: str, model: None = None) -> Any: ...
    async def get_dashboard(self, user_id: str, model: type[M] | None = None) -> Any:
        return await self.get(DASHBOARD, user_id=user_id, model=model)

    async def set_dashboard(self, user_id: str, value: Any, ttl: TTL | None = None) -> None:
        await self.set(DASHBOARD, value, user_id=user_id, ttl=ttl)

    # -- discover sections (shared, ttl.catalog) ----------------------------------------
    @overload
    async def get_discover(self, section_id: str, model: type[M]) -> M | None: ...
    @overload
    async def get_discover(self, section_id: str, model: None = None) -> Any: ...
    async def get_discover(self, section_id: str, model: type[M] | None = None) -> Any:
        return await self.get(DISCOVER, section_id=section_id, model=model)

    async def set_discover(self, section_id: str, value: Any, ttl: TTL | None = None) -> None:
        await self.set(DISCOVER, value, section_id=section_id, ttl=ttl)

    # -- search results (shared, ttl.search_results) -----------------------------------
    @overload
    async def get_search_results(
        self, query: str, model: type[M], *, filters: Filters = None
    ) -> M | None: ...
    @overload
    async def get_search_results(
        self, query: str, model: None = None, *, filters: Filters = None
    ) -> Any: ...
    async def get_search_results(
        self, query: str, model: type[M] | None = None, *, filters: Filters = None
    ) -> Any:
        return await self.get(SEARCH, query=query, filters=filters, model=model)

    async def set_search_results(
        self, query: str, value: Any, *, filters: Filters = None, ttl: TTL | None = None
    ) -> None:
        await self.set(SEARCH, value, query=query, filters=filters, ttl=ttl)

    # -- watch later (per user, ttl.catalog) --------------------------------------------
    @overload
    async def get_watch_later(self, user_id: str, model: type[M]) -> M | None: ...
    @overload
    async def get_watch_later(self, user_id: str, model: None = None) -> Any: ...
    async def get_watch_later(self, user_id: str, model: type[M] | None = None) -> Any:
        return await self.get(WATCH_LATER, user_id=user_id, model=model)

    async def set_watch_later(self, user_id: str, value: Any, ttl: TTL | None = None) -> None:
        await self.set(WATCH_LATER, value, user_id=user_id, ttl=ttl)

    # -- continue watching (per user, ttl.catalog) ------------------------------------
    @overload
    async def get_continue_watching(self, user_id: str, model: type[M]) -> M | None: ...
    @overload
    async def get_continue_watching(self, user_id: str, model: None = None) -> Any: ...
    async def get_continue_watching(self, user_id: str, model: type[M] | None = None) -> Any:
        return await self.get(CONTINUE, user_id=user_id, model=model)

    async def set_continue_watching(self, user_id: str, value: Any, ttl: TTL | None = None) -> None:
        await self.set(CONTINUE, value, user_id=user_id, ttl=ttl)

    # -- recommendations (per user, ttl.recommendations) -------------------------------
    @overload
    async def get_recommendations(self, user_id: str, model: type[M]) -> M | None: ...
    @overload
    async def get_recommendations(self, user_id: str, model: None = None) -> Any: ...
    async def get_recommendations(self, user_id: str, model: type[M] | None = None) -> Any:
        return await self.get(RECOMMENDATIONS, user_id=user_id, model=model)

    async def set_recommendations(self, user_id: str, value: Any, ttl: TTL | None = None) -> None:
        await self.set(RECOMMENDATIONS, value, user_id=user_id, ttl=ttl)
