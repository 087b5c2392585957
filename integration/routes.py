"""Routes: which CleverTap account, event names, rules and transform a webhook gets.

A route is one ``[[routes]]`` entry (see :class:`integration.config.RouteConfig`), or the
implicit route ``default`` of the top-level ``[clevertap]`` account: today's single-account
configuration is exactly that one route.  Each route carries a whole
:class:`~integration.config.Config`, so mapping, the property budget and delivery take the
route's configuration and know nothing of routes.

How a webhook finds its route (the receiver asks :meth:`Routes.for_path` and
:meth:`Routes.for_event`)::

    POST /webhooks/revenuecat/<path>   the route whose path it is (its own Authorization);
                                       no such route: 404, nothing stored
    POST /webhooks/revenuecat          the first route (in file order) whose app_ids hold the
                                       event's app_id and whose environments its environment;
                                       else "default" when [clevertap] names an account;
                                       else 404, nothing stored (RevenueCat retries it, so a
                                       route added within its retry schedule still gets it)

The route's name is stored on the outbox row (``events.route``), so a retry, a replay or a
dead letter sent again goes where the event first went, whatever the configuration says of
its app id by then.  A row whose route is no longer configured waits, unchanged, until it is
configured again (:mod:`integration.dispatcher`); ``status`` and the engine's start say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from integration.config import DEFAULT_ROUTE, Config, Secret
from integration.mapping import preview
from integration.premap import fingerprint
from integration.transform import Transform, load_callable
from integration.webhook import parse_webhook

__all__ = ["DEFAULT_ROUTE", "WEBHOOK_PATH", "Route", "Routes", "preview_route", "route_for_event"]

WEBHOOK_PATH = "/webhooks/revenuecat"


@dataclass(frozen=True, slots=True)
class Route:
    """One route, ready to serve: its name, claims, configuration and loaded transform."""

    name: str
    config: Config
    path: str | None = None  # the whole URL path it claims, e.g. /webhooks/revenuecat/ios
    authorization: Secret | None = None  # what that path demands (the route's, else [webhook]'s)
    app_ids: frozenset[str] = frozenset()
    environments: frozenset[str] = frozenset()
    transform: Transform | None = None
    # What mapping under this route's configuration is called (integration/premap.py): the
    # receiver stores it with each event's mapped form, delivery trusts only forms that match.
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", fingerprint(self.config))

    def __repr__(self) -> str:
        return f"Route({self.name!r}, account_id={self.config.clevertap.account_id!r})"


class Routes:
    """Every route of a configuration, with their transforms imported (once, at start-up).

    Example::

        routes = Routes(load_config("rc-clevertap.toml"))
        route = routes.for_event("app1a2b3c4", "PRODUCTION")  # None: refused, not stored

    Raises :class:`~integration.config.ConfigError` naming the key of a transform that cannot
    be imported or is not callable.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        loaded: dict[tuple[str, float], Transform] = {}
        routes: list[Route] = []
        if config.default_route:
            transform = _transform(config, "transform.callable", loaded)
            routes.append(Route(DEFAULT_ROUTE, config, transform=transform))
        for entry in config.routes:
            routes.append(
                Route(
                    entry.name,
                    entry.config,
                    path=None if entry.path is None else f"{WEBHOOK_PATH}/{entry.path}",
                    authorization=entry.config.webhook.authorization,
                    app_ids=frozenset(entry.app_ids),
                    environments=frozenset(entry.environments),
                    transform=_transform(entry.config, entry.transform_key, loaded),
                )
            )
        self._by_name = {route.name: route for route in routes}
        self._by_path = {route.path: route for route in routes if route.path is not None}
        self._matching = [route for route in routes if route.app_ids]
        self._default = self._by_name.get(DEFAULT_ROUTE)

    def __iter__(self) -> Iterator[Route]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"Routes({', '.join(self._by_name)})"

    @property
    def names(self) -> tuple[str, ...]:
        """Configured route names: the only values of the metrics' ``route`` label."""
        return tuple(self._by_name)

    @property
    def several(self) -> bool:
        """Whether ``[[routes]]`` are configured (the metrics then carry a ``route`` label)."""
        return bool(self.config.routes)

    def get(self, name: str) -> Route | None:
        return self._by_name.get(name)

    def for_path(self, path: str) -> Route | None:
        """The route that claims ``path`` (below :data:`WEBHOOK_PATH`), if any."""
        return self._by_path.get(path)

    def for_event(self, app_id: str | None, environment: str) -> Route | None:
        """The route an event posted to the shared path takes, or ``None`` (refused)."""
        if app_id is not None:
            for route in self._matching:
                if app_id in route.app_ids and environment in route.environments:
                    return route
        return self._default


def route_for_event(config: Config, app_id: str | None, environment: str) -> str | None:
    """The name of the route an event on the shared path takes, from the configuration alone
    (no transform imported): what a quarantined body requeued by an operator gets.  ``None``
    when no route takes it."""
    for entry in config.routes:
        if app_id in entry.app_ids and environment in entry.environments:
            return entry.name
    return DEFAULT_ROUTE if config.default_route else None


async def preview_route(body: bytes, routes: Routes, *, route: str | None = None) -> dict[str, Any]:
    """What ``rc-clevertap map`` prints: the route an event takes (the shared path's choice,
    or ``route``'s, as if posted to its path), and its upload after the route's transform.

    Without ``[[routes]]`` and a transform, exactly :func:`integration.mapping.preview`'s
    document; with ``[[routes]]`` it also names the ``route``.  Raises
    :class:`~integration.webhook.InvalidWebhook` for a body the receiver would refuse, and
    :class:`KeyError` for an unknown ``route``.
    """
    envelope = parse_webhook(body)
    chosen = (
        routes.for_event(envelope.text("app_id"), envelope.environment)
        if route is None
        else routes.get(route)
    )
    if chosen is None:
        if route is not None:
            raise KeyError(route)
        return {
            "d": [],
            "route": None,
            "refused": f"no route takes app_id {envelope.text('app_id')!r} in "
            f"{envelope.environment} (answered 404, not stored)",
        }
    result = preview(body, chosen.config)
    if chosen.transform is not None and result["d"]:
        [outcome] = await chosen.transform.apply([(envelope.event, result["d"])], route=chosen.name)
        if outcome.records is None:
            result = {"d": [], "dead_letter": outcome.error}
        elif not outcome.records:
            result = {"d": [], "skipped": "transform returned no records"}
        else:
            result["d"] = outcome.records
    if routes.several:
        result["route"] = chosen.name
    return result


def _transform(
    config: Config, key: str, loaded: dict[tuple[str, float], Transform]
) -> Transform | None:
    reference, timeout_s = config.transform.callable, config.transform.timeout_s
    if reference is None:
        return None
    if (reference, timeout_s) not in loaded:
        function = load_callable(reference, key)
        loaded[reference, timeout_s] = Transform(function, timeout_s=timeout_s)
    return loaded[reference, timeout_s]
