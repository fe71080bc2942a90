"""Service-hook subscription routes of the fake collection (`_apis/hooks/...`)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from devhost.fake_ado.model import SUBSCRIPTION_STATUSES, CollectionState, now_iso
from devhost.fake_ado.routes import CONFIDENTIAL_INPUTS, MASKED, ApiError, Call, Reply, _allow

_REQUIRED = ("publisherId", "eventType", "consumerId", "consumerActionId")
_FIXED_ON_REPLACE = ("publisherId", "consumerId", "consumerActionId")


def hooks_routes(state: CollectionState, call: Call, rest: list[str]) -> Reply:
    keys = [segment.lower() for segment in rest]
    if keys == ["subscriptions"]:
        _allow(call, "GET", "POST")
        if call.method == "POST":
            return Reply(200, _masked(_create(state, call), call))
        selected = [subscription for subscription in state.subscriptions.values()
                    if all(not call.query.get(name) or subscription.get(name) == call.query[name]
                           for name in ("publisherId", "eventType", "consumerId", "consumerActionId"))]
        return Reply(200, {"count": len(selected), "value": [_masked(item, call) for item in selected]})
    if keys == ["subscriptionsquery"]:
        _allow(call, "POST")
        return Reply(200, _query(state, call))
    if keys[:1] == ["subscriptions"] and len(keys) == 2:
        _allow(call, "GET", "PUT", "DELETE")
        subscription = state.subscriptions.get(keys[1])
        if subscription is None:
            raise ApiError(404, "SubscriptionNotFoundException", f"No subscription with id {rest[1]} exists.")
        if call.method == "GET":
            return Reply(200, _masked(subscription, call))
        if call.method == "DELETE":
            del state.subscriptions[keys[1]]
            return Reply(204)
        return Reply(200, _masked(_replace(subscription, call), call))
    raise ApiError(404, "ApiResourceNotFoundException",
                   f"API resource location hooks/{'/'.join(rest)} is not registered.")


def _validate(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidArgumentValueException",
                       "The subscription body is missing or is not a JSON object.")
    missing = [name for name in _REQUIRED if not body.get(name)]
    if missing:
        raise ApiError(400, "InvalidArgumentValueException",
                       f"The subscription is missing required fields: {', '.join(missing)}.")
    publisher_inputs = body.get("publisherInputs")
    if not isinstance(publisher_inputs, dict) or not publisher_inputs.get("projectId"):
        raise ApiError(400, "InvalidArgumentValueException", "The publisher input projectId is required.")
    consumer_inputs = body.get("consumerInputs")
    if not isinstance(consumer_inputs, dict) or not consumer_inputs.get("url"):
        raise ApiError(400, "InvalidArgumentValueException", "The consumer input url is required.")
    status = body.get("status")
    if status is not None and status not in SUBSCRIPTION_STATUSES:
        raise ApiError(400, "InvalidArgumentValueException", f"The subscription status '{status}' is not valid.")
    return body


def _create(state: CollectionState, call: Call) -> dict[str, Any]:
    body = copy.deepcopy(_validate(call.body))
    subscription_id = str(uuid.uuid4())
    creator = {"id": call.identity.id, "displayName": call.identity.display_name}
    body.update({"id": subscription_id, "status": body.get("status") or "enabled", "createdBy": creator,
                 "createdDate": now_iso(), "modifiedBy": creator, "modifiedDate": now_iso(), "probationRetries": 0,
                 "url": f"{call.base_url}/_apis/hooks/subscriptions/{subscription_id}",
                 "eventDescription": f"Project {body['publisherInputs']['projectId']}",
                 "actionDescription": f"To URL {body['consumerInputs']['url']}"})
    body["publisherInputs"].update({"hostId": state.collection_id, "tfsSubscriptionId": str(uuid.uuid4())})
    state.subscriptions[subscription_id] = body
    return body


def _replace(subscription: dict[str, Any], call: Call) -> dict[str, Any]:
    body = copy.deepcopy(_validate(call.body))
    for name in _FIXED_ON_REPLACE:
        if body[name] != subscription[name]:
            raise ApiError(400, "InvalidArgumentValueException",
                           f"The field {name} of a subscription cannot change; delete and create the subscription.")
    for name in CONFIDENTIAL_INPUTS:
        if body["consumerInputs"].get(name) == MASKED:
            body["consumerInputs"][name] = subscription["consumerInputs"].get(name)
    body["publisherInputs"].setdefault("hostId", subscription["publisherInputs"].get("hostId"))
    body["publisherInputs"].setdefault("tfsSubscriptionId", subscription["publisherInputs"].get("tfsSubscriptionId"))
    for name in ("id", "url", "createdBy", "createdDate", "probationRetries", "eventDescription", "actionDescription"):
        body[name] = subscription[name]
    body["status"] = body.get("status") or subscription["status"]
    body["modifiedBy"] = {"id": call.identity.id, "displayName": call.identity.display_name}
    body["modifiedDate"] = now_iso()
    subscription.clear()
    subscription.update(body)
    return subscription


def _masked(subscription: dict[str, Any], call: Call) -> dict[str, Any]:
    copied = copy.deepcopy(subscription)
    for name in CONFIDENTIAL_INPUTS:
        if copied.get("consumerInputs", {}).get(name):
            copied["consumerInputs"][name] = MASKED
    return copied


def _matches(subscription: dict[str, Any], filters: Any) -> bool:
    """Return True when every condition of any one input filter holds (filters are OR-ed, conditions AND-ed)."""
    if not filters:
        return True
    inputs = subscription.get("publisherInputs", {})
    for input_filter in filters:
        conditions = input_filter.get("conditions", []) if isinstance(input_filter, dict) else []
        if all(_condition_holds(inputs.get(condition.get("inputId")), condition) for condition in conditions):
            return True
    return False


def _condition_holds(value: Any, condition: dict[str, Any]) -> bool:
    operator = condition.get("operator", "equals")
    expected = condition.get("inputValue")
    if operator == "equals":
        return str(value or "").lower() == str(expected or "").lower()
    if operator == "notEquals":
        return str(value or "").lower() != str(expected or "").lower()
    raise ApiError(400, "InvalidArgumentValueException", f"The input filter operator '{operator}' is not valid.")


def _query(state: CollectionState, call: Call) -> dict[str, Any]:
    body = call.body if isinstance(call.body, dict) else {}
    results = [subscription for subscription in state.subscriptions.values()
               if all(not body.get(name) or subscription.get(name) == body[name]
                      for name in ("publisherId", "eventType", "consumerId", "consumerActionId"))
               and _matches(subscription, body.get("publisherInputFilters"))]
    return {**body, "results": [_masked(subscription, call) for subscription in results]}
