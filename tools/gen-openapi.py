#!/usr/bin/python3
"""gen-openapi.py ROUTES.json > schema/http-api.openapi.json

Writes hopper-web's OpenAPI 3.1 document from its route table (hopper-web --routes) and the control
protocol's JSON Schemas (schema/control/OP.schema.json): each /v1 route's request fields and result are the
op's, referenced, not copied, so the HTTP API's document cannot drift from the control socket's.
tests/web/api_test.py regenerates it and compares."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ERRORS = {"400": "bad_request (malformed, unknown field, wrong type or range)",
          "401": "unauthenticated / auth_failed (Authorization: Bearer <hopper token>, or the session cookie)",
          "403": "forbidden (the token lacks the op's scope; CSRF token missing on a cookie request)",
          "404": "not_found (no such object, or another owner's)", "409": "conflict (the object's state forbids it)",
          "413": "too_large (body over the limit)", "429": "limit / locked_out (retry after Retry-After)",
          "503": "unavailable (Redis unreachable; retry later)"}


def errors():
    return {code: {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for code, text in ERRORS.items()}


def op_schema(op):
    path = os.path.join(ROOT, "schema", "control", op + ".schema.json")
    return json.load(open(path))


def route_op(r):
    op = r["op"]
    path_fields = [seg[1:-1] for seg in r["path"].split("/") if seg.startswith("{")]
    params = [{"name": f, "in": "path", "required": True, "schema": {"type": "string"}} for f in path_fields]
    out = {"operationId": (op or r["path"].strip("/").replace("/", "_")).replace(".", "_") + "_" + r["method"].lower(),
           "summary": r["summary"], "responses": errors()}
    if not op:
        out["responses"]["200"] = {"description": "the credential", "content": {"application/json": {
            "schema": {"$ref": "control/auth.schema.json#/$defs/result"}}}}
        return out
    out["x-hopper-op"] = op
    out["x-hopper-scope"] = r.get("scope", [])
    sch = op_schema(op)
    props = sch["$defs"]["request"].get("properties", {})
    rest = [f for f in r.get("fields", []) if f not in path_fields and not (r.get("fixed") or "").startswith(f + "=")]
    if r["body"] == "none":
        for f in rest:
            params.append({"name": f, "in": "query", "required": False,
                           "schema": props.get(f, {"type": "string"})})
    else:
        body = {"$ref": "control/%s.schema.json#/$defs/request" % op}
        if r["body"] == "jobs":
            body = {"oneOf": [{"$ref": "job.schema.json"}, {"type": "array", "items": {"$ref": "job.schema.json"}},
                              body]}
        out["requestBody"] = {"required": op == "token.create", "content": {"application/json": {"schema": body}},
                              "description": "the op's fields (" + ", ".join(rest) + ")"}
    if r.get("header"):
        h, f = r["header"].split("=")
        params.append({"name": h, "in": "header", "required": False, "schema": {"type": "string"},
                       "description": "copied to the op's field " + f})
    if r.get("sse"):
        params.append({"name": "Last-Event-ID", "in": "header", "required": False,
                       "schema": {"type": "string", "pattern": "^[0-9]{1,15}-[0-9a-f]{8}$"},
                       "description": "resume after the event with this id (an id the stream sent); when the job's "
                       "event list no longer holds it (trimmed to the daemon's events_max), the stream starts "
                       "with event lost, then sends the events still held"})
        params.append({"name": "last_event_id", "in": "query", "required": False, "schema": {"type": "string"},
                       "description": "the same as Last-Event-ID"})
        out["responses"]["200"] = {"description": "Server-Sent Events. id: <at_ms>-<hash>, the event's own (its "
                                   "at in milliseconds and 8 hex digits of FNV-1a over its canonical JSON: the "
                                   "same on every stream of the job); event: state|progress (data: "
                                   "event.schema.json); on a resume whose event is gone, first event lost, without "
                                   "id (data: {last_event_id, reason: trimmed|unknown_id|not_found|ambiguous, "
                                   "missing_after, missing_before (Unix seconds: events between may be missing, "
                                   "how many is not known), next_id, job (the job view when the stream opened)}); "
                                   "last event end (data: the job view) or error",
                                   "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    else:
        out["responses"]["200"] = {"description": "the op's result", "content": {"application/json": {
            "schema": {"$ref": "control/%s.schema.json#/$defs/result" % op}}}}
    if params:
        out["parameters"] = params
    return out


def main():
    routes = json.load(open(sys.argv[1]))
    paths = {}
    for r in routes:
        paths.setdefault(r["path"], {})[r["method"].lower()] = route_op(r)
    paths["/webhook/{token}"] = {"post": {
        "operationId": "webhook_post", "summary": "trigger the stored workflow this webhook token names",
        "security": [], "x-hopper-op": "webhook.trigger",
        "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}},
                       {"name": "X-Hub-Signature-256", "in": "header", "required": False, "schema": {"type": "string"}},
                       {"name": "Stripe-Signature", "in": "header", "required": False, "schema": {"type": "string"}},
                       {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}],
        "requestBody": {"content": {"application/json": {"schema": {}},
                                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                                    "*/*": {"schema": {"type": "string"}}}},
        "responses": dict(errors(), **{"202": {"description": "accepted", "content": {"application/json": {
            "schema": {"type": "object", "required": ["job_id", "workflow", "status"],
                       "properties": {"job_id": {"type": "string"}, "workflow": {"type": "string"},
                                      "status": {"const": "accepted"}, "duplicate": {"type": "boolean"}}}}}},
                                       "401": {"description": "the signature is missing or does not verify"},
                                       "409": {"description": "the workflow is not active"}})}}
    paths["/metrics"] = {"get": {"operationId": "metrics_get", "summary": "Prometheus text exposition",
                                 "security": [], "responses": {"200": {"description": "metrics", "content": {
                                     "text/plain": {"schema": {"type": "string"}}}}}}}
    paths["/login"] = {"post": {"operationId": "login_post", "summary": "dashboard login: sets the session cookie",
                                "security": [], "requestBody": {"required": True, "content": {"application/json": {
                                    "schema": {"type": "object", "required": ["token"],
                                               "properties": {"token": {"type": "string"}}}}}},
                                "responses": dict(errors(), **{"200": {"description": "{csrf, identity}"}})}}
    paths["/session"] = {"get": {"operationId": "session_get", "summary": "the session's CSRF token and identity",
                                 "security": [{"cookie": []}],
                                 "responses": dict(errors(), **{"200": {"description": "{csrf, identity}"}})}}
    paths["/logout"] = {"post": {"operationId": "logout_post", "summary": "end the session (X-CSRF-Token)",
                                 "security": [{"cookie": []}],
                                 "responses": dict(errors(), **{"200": {"description": "{logged_out: true}"}})}}
    doc = {"openapi": "3.1.0",
           "info": {"title": "hopper-web HTTP API", "version": "1",
                    "description": "The control protocol's ops over HTTP (schema/control-protocol.md): the same "
                                   "fields, results, scopes, owner rules and error codes. Generated by "
                                   "tools/gen-openapi.py from hopper-web --routes; do not edit by hand."},
           "servers": [{"url": "http://127.0.0.1:8080"}],
           "security": [{"bearer": []}, {"cookie": []}],
           "components": {"securitySchemes": {
               "bearer": {"type": "http", "scheme": "bearer", "description": "a hopper token hop_<id>_<secret>"},
               "cookie": {"type": "apiKey", "in": "cookie", "name": "hopper_session",
                          "description": "dashboard session; state changes also need X-CSRF-Token"}},
               "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {
                   "type": "object", "required": ["code", "message"],
                   "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}},
           "paths": paths}
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


main()
