"""Index a v2 `FunctionApp` the way the Python worker does, into typed function descriptions."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from devhost.functions_host.errors import HostStartError
from devhost.functions_host.routing import RouteTemplate, compile_route
from devhost.ncrontab import CronSchedule, ScheduleError, parse_schedule

SUPPORTED_TRIGGERS = ("httpTrigger", "queueTrigger", "timerTrigger")
DEFAULT_CONNECTION = "AzureWebJobsStorage"
_APP_SETTING = re.compile(r"%([^%]+)%")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class HttpTriggerSpec:
    route: RouteTemplate
    methods: frozenset[str] | None
    auth_level: str


@dataclass(frozen=True)
class QueueTriggerSpec:
    queue_name: str
    connection: str


@dataclass(frozen=True)
class TimerTriggerSpec:
    schedule: CronSchedule
    run_on_startup: bool


@dataclass(frozen=True)
class QueueOutputSpec:
    argument: str
    queue_name: str
    connection: str


@dataclass(frozen=True)
class IndexedFunction:
    """One function of the app with its trigger and the bindings the host serves."""

    name: str
    user_function: Callable[..., Any]
    is_async: bool
    trigger_type: str
    trigger_argument: str
    http: HttpTriggerSpec | None = None
    queue: QueueTriggerSpec | None = None
    timer: TimerTriggerSpec | None = None
    queue_outputs: tuple[QueueOutputSpec, ...] = ()
    context_argument: str | None = None
    returns_http: bool = False


def resolve_app_settings(value: str, environ: Mapping[str, str], where: str) -> str:
    """Replace each `%NAME%` in a binding value with the app setting NAME, as the runtime does."""
    def replace(match: re.Match[str]) -> str:
        name = match[1]
        if name not in environ:
            raise HostStartError(f"{where} refers to the app setting %{name}%, which is not set. "
                                 f"Set the environment variable {name}.")
        return environ[name]
    return _APP_SETTING.sub(replace, value)


def _queue_name(raw: str, function_name: str, environ: Mapping[str, str]) -> str:
    name = resolve_app_settings(raw, environ, f"Function {function_name!r}").lower()
    if not _QUEUE_NAME.match(name):
        raise HostStartError(f"Function {function_name!r} uses the queue name {name!r}, which is invalid: queue "
                             "names have 3 to 63 lowercase letters, digits and single hyphens.")
    return name


def _check_parameters(function_name: str, user_function: Callable[..., Any],
                      binding_names: set[str]) -> str | None:
    """Check that the Python parameters and the binding names agree; return the context parameter if any."""
    parameters = set(inspect.signature(user_function).parameters)
    context = "context" if "context" in parameters and "context" not in binding_names else None
    missing_in_bindings = parameters - binding_names - {context}
    missing_in_python = binding_names - parameters
    if missing_in_bindings:
        raise HostStartError(f"Function {function_name!r} declares the parameters {sorted(missing_in_bindings)} "
                             "that no binding names; set arg_name on the decorators to the parameter names.")
    if missing_in_python:
        raise HostStartError(f"Function {function_name!r} has bindings {sorted(missing_in_python)} without a "
                             "parameter of that name; rename the parameter or the binding's arg_name.")
    return context


def _index_one(function: Any, environ: Mapping[str, str]) -> IndexedFunction:
    name = function.get_function_name()
    user_function = function.get_user_function()
    bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
    triggers = [binding for binding in bindings if binding["type"].endswith("Trigger")]
    if len(triggers) != 1:
        raise HostStartError(f"Function {name!r} has {len(triggers)} triggers; a function needs exactly one.")
    trigger = triggers[0]
    if trigger["type"] not in SUPPORTED_TRIGGERS:
        raise HostStartError(f"Function {name!r} uses the trigger type {trigger['type']!r}, which the local host "
                             f"does not run. Supported: {', '.join(SUPPORTED_TRIGGERS)}.")

    queue_outputs: list[QueueOutputSpec] = []
    returns_http = False
    for binding in bindings:
        if binding is trigger:
            continue
        kind, argument = binding["type"], binding["name"]
        if kind == "http" and binding.get("direction") == "OUT":
            returns_http = True
        elif kind == "queue" and binding.get("direction") == "OUT":
            queue_outputs.append(QueueOutputSpec(argument, _queue_name(binding["queueName"], name, environ),
                                                 binding.get("connection") or DEFAULT_CONNECTION))
        else:
            raise HostStartError(f"Function {name!r} uses a {kind!r} binding ({binding.get('direction')}) named "
                                 f"{argument!r}, which the local host does not support. Supported: http output "
                                 "and queue output.")
    context = _check_parameters(name, user_function, {b["name"] for b in bindings} - {"$return"})

    fields: dict[str, Any] = {}
    where = f"Function {name!r}"
    if trigger["type"] == "httpTrigger":
        methods = trigger.get("methods")
        fields["http"] = HttpTriggerSpec(
            route=compile_route(trigger.get("route") or name),
            methods=frozenset(str(method).upper() for method in methods) if methods else None,
            auth_level=str(trigger.get("authLevel") or "function").lower())
    elif trigger["type"] == "queueTrigger":
        fields["queue"] = QueueTriggerSpec(_queue_name(trigger["queueName"], name, environ),
                                           trigger.get("connection") or DEFAULT_CONNECTION)
    else:
        expression = resolve_app_settings(str(trigger["schedule"]), environ, where)
        try:
            schedule = parse_schedule(expression)
        except ScheduleError as error:
            raise HostStartError(f"{where} has an invalid timer schedule: {error}") from error
        fields["timer"] = TimerTriggerSpec(schedule, bool(trigger.get("runOnStartup", False)))

    return IndexedFunction(
        name=name, user_function=user_function, is_async=inspect.iscoroutinefunction(user_function),
        trigger_type=trigger["type"], trigger_argument=trigger["name"], queue_outputs=tuple(queue_outputs),
        context_argument=context, returns_http=returns_http, **fields)


def index_app(app: func.FunctionApp, environ: Mapping[str, str]) -> list[IndexedFunction]:
    """Index every function of `app` (blueprints included); raise `HostStartError` if the app would not load.

    `app.get_functions()` can be called only once per app: a second call reports every function
    as a duplicate. Index an app once and keep the result.
    """
    try:
        functions = app.get_functions()
    except ValueError as error:
        raise HostStartError(f"The function app does not index: {error}") from error
    indexed = [_index_one(function, environ) for function in functions]
    names = [item.name.lower() for item in indexed]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise HostStartError(f"The function app has duplicate function names {duplicates}; names are "
                             "case-insensitive. Rename one with @app.function_name().")
    return indexed
