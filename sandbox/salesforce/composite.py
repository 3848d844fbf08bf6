"""``POST /services/data/vXX.X/composite``: a series of REST subrequests in one API call.

What the sandbox follows (resources_composite_composite_post.htm, requests_composite.htm,
responses_composite.htm):

* The request body is ``{"allOrNone": bool, "compositeRequest": [{"method", "url",
  "referenceId", "body"?, "httpHeaders"?}]}``; the answer is HTTP 200 with ``{"compositeResponse":
  [{"body", "httpHeaders", "httpStatusCode", "referenceId"}]}``, one entry per subrequest.
* "The entire series of requests counts as a single call toward your API limits": the request
  is charged once, whatever it holds.
* Up to 25 subrequests, "up to 5 of these subrequests can be sObject Collections or query
  operations, including Query and QueryAll requests". Past either limit nothing runs and the
  answer is one ``LIMIT_EXCEEDED`` entry with a null referenceId, as an org answers (the body
  quoted in guardian/support-service-lambdas#766: "The request can't contain more than 25
  operations.").
* Supported resources: sObject resources (``/sobjects/...``), Query and QueryAll (with their
  ``nextRecordsUrl`` locators) and sObject Collections (``/composite/sobjects``).
* ``@{referenceId.path}`` in a later ``url`` or ``body`` is replaced by that value of an earlier
  subrequest's answer (``@{ref.records[0].Id}``); a subrequest whose reference cannot be resolved
  (its subrequest failed) is not run.
* ``allOrNone``: "If the value is true, the entire composite request is rolled back" on an
  error; every other subrequest then answers 400 ``PROCESSING_HALTED``. If false, "the remaining
  subrequests that don't depend on the failed subrequest are executed".
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from sandbox.http import Request, Response, json_response
from sandbox.salesforce.errors import SalesforceError

if TYPE_CHECKING:
    from sandbox.salesforce.app import SalesforceApp

MAX_SUBREQUESTS = 25
MAX_QUERY_OR_COLLECTION = 5
_REFERENCE = re.compile(r"@\{([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_PATH_PART = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")
_RESOURCE = re.compile(
    r"^/services/data/v\d+\.\d+/(sobjects|query|queryAll|composite/sobjects)(/|$)"
)
_QUERY_OR_COLLECTION = ("query", "queryAll", "composite/sobjects")
ROLLED_BACK = ("The transaction was rolled back since another operation in the same transaction "
               "failed.")  # fmt: skip


class _Unresolved(Exception):
    def __init__(self, expression: str, reference: str) -> None:
        super().__init__(expression)
        self.expression = expression
        self.reference = reference


def _halted(message: str) -> list[dict[str, str]]:
    return [{"errorCode": "PROCESSING_HALTED", "message": message}]


def _limit_exceeded(message: str) -> Response:
    return json_response(200, {"compositeResponse": [{
        "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
        "httpHeaders": {}, "httpStatusCode": 400, "referenceId": None,
    }]})  # fmt: skip


class CompositeHandler:
    """The Composite resource of one sandbox org."""

    def __init__(self, app: SalesforceApp) -> None:
        self.app = app

    def handle(self, request: Request, version: str) -> Response:
        try:
            body = request.json()
        except ValueError:
            raise SalesforceError(400, "JSON_PARSER_ERROR", "the request body is not valid "
                                  "JSON") from None  # fmt: skip
        subs = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subs, list) or not subs or not all(isinstance(s, dict) for s in subs):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        if len(subs) > MAX_SUBREQUESTS:
            return _limit_exceeded("The request can’t contain more than 25 operations.")
        heavy = sum(1 for s in subs if _resource(str(s.get("url", ""))) in _QUERY_OR_COLLECTION)
        if heavy > MAX_QUERY_OR_COLLECTION:
            return _limit_exceeded("The request can’t contain more than 5 query or sObject "
                                   "Collections operations.")  # fmt: skip
        refs = [s.get("referenceId") for s in subs]
        if any(not isinstance(r, str) or not r for r in refs) or len(set(refs)) != len(refs):
            raise SalesforceError(400, "JSON_PARSER_ERROR",
                                  "every subrequest needs its own referenceId")  # fmt: skip
        all_or_none = bool(body.get("allOrNone", False))
        org = self.app.org
        # The org lock makes the series one transaction: nothing else writes in between, and an
        # allOrNone failure restores what the tables held before it.
        with org.lock:
            saved = _snapshot(org.tables) if all_or_none else None
            answers = self._run(request, subs, all_or_none)
            if saved is not None and any(a["httpStatusCode"] >= 400 for a in answers):
                _restore(org.tables, saved)
        return json_response(200, {"compositeResponse": answers})

    def _run(
        self, request: Request, subs: list[dict[str, Any]], all_or_none: bool
    ) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        results: dict[str, tuple[int, Any]] = {}
        failed = False
        for sub in subs:
            ref = str(sub["referenceId"])
            if failed and all_or_none:
                answers.append(_answer(ref, 400, _halted(ROLLED_BACK)))
                continue
            try:
                url = _substitute(str(sub.get("url", "")), results)
                payload = _substitute(sub.get("body"), results)
            except _Unresolved as exc:
                answers.append(_answer(ref, 400, _halted(
                    f"Invalid reference specified. No value for {exc.expression} found in "
                    f"{exc.reference}. Provided referenceId ensure that the reference is correct."
                )))  # fmt: skip
                results[ref] = (400, None)
                failed = True
                continue
            if _resource(url) is None:
                status, result, headers = 400, [{
                    "errorCode": "INVALID_API_INPUT",
                    "message": f"{url.split('?')[0]} is not supported in a composite request",
                }], {}  # fmt: skip
            else:
                extra = sub.get("httpHeaders") if isinstance(sub.get("httpHeaders"), dict) else {}
                resp = self.app.subrequest(request, str(sub.get("method", "GET")), url, payload,
                                           extra)  # fmt: skip
                status = resp.status
                result = json.loads(b"".join(resp.chunks()) or b"null")
                headers = {k: v for k, v in resp.headers.items() if k.lower() == "location"}
                if status == 201 and isinstance(result, dict) and result.get("id"):
                    # A created record's subresult names it (responses_composite.htm example).
                    headers.setdefault("Location", f"{url.split('?')[0]}/{result['id']}")
            results[ref] = (status, result)
            answers.append(_answer(ref, status, result, headers))
            if status >= 400:
                failed = True
        if failed and all_or_none:
            for a in answers:
                if a["httpStatusCode"] < 400:
                    a.update(body=_halted(ROLLED_BACK), httpStatusCode=400, httpHeaders={})
        return answers


def _answer(
    ref: str, status: int, body: Any, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return {"body": body, "httpHeaders": headers or {}, "httpStatusCode": status,
            "referenceId": ref}  # fmt: skip


def _resource(url: str) -> str | None:
    """``sobjects``, ``query``, ``queryAll`` or ``composite/sobjects`` (else unsupported)."""
    m = _RESOURCE.match(url.split("?")[0])
    return m.group(1) if m else None


def _substitute(value: Any, results: dict[str, tuple[int, Any]]) -> Any:
    if isinstance(value, str):
        return _REFERENCE.sub(lambda m: str(_resolve(m, results)), value)
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    return value


def _resolve(m: re.Match[str], results: dict[str, tuple[int, Any]]) -> Any:
    ref, path = m.group(1), m.group(2)
    status, current = results.get(ref, (404, None))
    if status >= 400:
        raise _Unresolved(f"{ref}{path}", ref)
    for key, index in _PATH_PART.findall(path):
        try:
            current = current[int(index)] if index else current[key]
        except (KeyError, IndexError, TypeError):
            raise _Unresolved(f"{ref}{path}", ref) from None
    return current


def _snapshot(tables: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {name: t.snapshot() for name, t in tables.items()}


def _restore(tables: dict[str, Any], saved: dict[str, tuple[Any, ...]]) -> None:
    for name, rows in saved.items():
        tables[name].restore(rows)
