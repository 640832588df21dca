"""The OpenAPI 3 document of /api/v1 (served at GET /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from ddns_server import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    str(code): {"$ref": "#/components/responses/Error"}
    for code in (400, 401, 403, 404, 405, 409, 412, 413, 415, 429)
}
_ZONE = {"name": "zone", "in": "path", "required": True, "schema": {"type": "string"}}


def _status_path(key: str, summary: str, command: str) -> dict[str, Any]:
    """A read-only status list (admin), the rows `ddns-server COMMAND --json` prints."""
    rows = {"type": "object", "properties": {key: {"type": "array", "items": {"type": "object"}}}}
    return {
        "parameters": [_ZONE],
        "get": {
            "summary": f"{summary}, as `{command} --json` prints them",
            "responses": {
                "200": _json(rows, summary),
                "403": {"$ref": "#/components/responses/Error"},
            },
        },
    }


_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "`@` (the apex), a name relative to the zone, or absolute",
    "schema": {"type": "string"},
}
_TYPE = {"name": "type", "in": "path", "required": True, "schema": {"type": "string"}}
_BATCH = {
    "required": True,
    "content": {"application/json": {"schema": _ref("Batch")}},
}


def _op(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {"200": ok, **_ERRORS}, **extra}


def document() -> dict[str, Any]:
    """The document; built on request (it is small), so it cannot drift from a cache."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ddns-server management API",
            "version": __version__,
            "description": "Token-scoped changes of the served zones; every change is one "
            "journaled version (channel `api`, who = the token's name). See docs/api.md.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/zones": {"get": _op("The token's zone", _json(_ref("ZoneList")))},
            "/zones/{zone}": {
                "parameters": [_ZONE],
                "get": _op("One zone and its serial", _json(_ref("Zone"))),
                "patch": _op(
                    "A batch of changes (as POST .../records)",
                    _json(_ref("Result")),
                    requestBody=_BATCH,
                ),
            },
            "/zones/{zone}/records": {
                "parameters": [_ZONE],
                "get": _op(
                    "The RRsets the token may see",
                    _json(_ref("RRsetList")),
                    parameters=[
                        {"name": "name", "in": "query", "schema": {"type": "string"}},
                        {"name": "type", "in": "query", "schema": {"type": "string"}},
                    ],
                ),
                "post": _op(
                    "A batch of changes as one version; `if_serial` -> 412 when the zone moved on",
                    _json(_ref("Result")),
                    requestBody=_BATCH,
                ),
            },
            "/zones/{zone}/changes": {
                "parameters": [_ZONE],
                "post": _op(
                    "A batch of changes (as POST .../records)",
                    _json(_ref("Result")),
                    requestBody=_BATCH,
                ),
            },
            "/zones/{zone}/records/{name}/{type}": {
                "parameters": [_ZONE, _NAME, _TYPE],
                "get": _op("One RRset", _json(_ref("RRset"))),
                "put": _op(
                    "Replace the RRset (ttl + values)",
                    _json(_ref("Result")),
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("RRsetBody")}},
                    },
                ),
                "delete": _op("Delete the RRset", _json(_ref("Result"))),
            },
            "/zones/{zone}/versions": {
                "parameters": [_ZONE],
                "get": _op(
                    "Journaled versions, newest first (admin)",
                    _json(
                        {
                            "type": "object",
                            "properties": {"versions": {"type": "array", "items": _ref("Version")}},
                        }
                    ),
                    parameters=[{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                ),
            },
            "/zones/{zone}/versions/{serial}": {
                "parameters": [
                    _ZONE,
                    {
                        "name": "serial",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                ],
                "get": _op("One version and its diff (admin)", _json(_ref("Version"))),
            },
            "/zones/{zone}/versions/{serial}/rollback": {
                "parameters": [
                    _ZONE,
                    {
                        "name": "serial",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                ],
                "post": _op(
                    "Roll back to this version (admin; body optional: force, dry_run)",
                    _json({"type": "object"}),
                ),
            },
            "/zones/{zone}/rollback": {
                "parameters": [_ZONE],
                "post": _op(
                    "Make the content what it was at a serial, as a new version (admin)",
                    _json({"type": "object"}),
                    requestBody={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["serial"],
                                    "properties": {
                                        "serial": {"type": "integer"},
                                        "force": {"type": "boolean"},
                                        "dry_run": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                ),
            },
            "/zones/{zone}/mirrors": _status_path(
                "mirrors", "Mirror status (admin): the zone's mirrors", "mirror status"
            ),
            "/zones/{zone}/failover": _status_path(
                "failover", "Failover status (admin): the zone's failover RRsets", "health status"
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": _json(_ref("Error"), "A JSON error; nothing was changed")},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "status": {"type": "integer"},
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "refused": {"type": "object"},
                            },
                        }
                    },
                },
                "Zone": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "serial": {"type": "integer"},
                        "records": {"type": "integer"},
                    },
                },
                "ZoneList": {
                    "type": "object",
                    "properties": {"zones": {"type": "array", "items": _ref("Zone")}},
                },
                "RRset": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string"},
                        "ttl": {"type": "integer"},
                        "values": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "RRsetList": {
                    "type": "object",
                    "properties": {
                        "zone": {"type": "string"},
                        "serial": {"type": "integer"},
                        "rrsets": {"type": "array", "items": _ref("RRset")},
                    },
                },
                "RRsetBody": {
                    "type": "object",
                    "required": ["values"],
                    "properties": {
                        "ttl": {"type": "integer"},
                        "values": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    },
                },
                "Change": {
                    "type": "object",
                    "required": ["op", "name", "type"],
                    "properties": {
                        "op": {"type": "string", "enum": ["replace", "delete", "add", "remove"]},
                        "name": {"type": "string"},
                        "type": {"type": "string"},
                        "ttl": {"type": "integer"},
                        "values": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "Batch": {
                    "type": "object",
                    "required": ["changes"],
                    "properties": {
                        "if_serial": {"type": "integer"},
                        "changes": {"type": "array", "items": _ref("Change")},
                    },
                },
                "Result": {
                    "type": "object",
                    "properties": {
                        "serial": {"type": "integer"},
                        "changed": {"type": "boolean"},
                        "rrset": _ref("RRset"),
                    },
                },
                "Version": {
                    "type": "object",
                    "properties": {
                        "serial": {"type": "integer"},
                        "time": {"type": "string"},
                        "who": {"type": "string"},
                        "source": {"type": "string"},
                        "channel": {"type": "string"},
                        "removed": {"type": "integer"},
                        "added": {"type": "integer"},
                        "diff": {"type": "object"},
                    },
                },
            },
        },
    }
