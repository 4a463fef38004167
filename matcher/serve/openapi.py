"""The service's OpenAPI 3.1 description (``GET /openapi.json``), written by hand from the routes."""

from __future__ import annotations

from typing import Any

from ..version import __version__

__all__ = ["openapi_schema"]

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad request (malformed JSON or multipart, bad hex, unknown algorithm, missing parameter)",
        401: "no valid API key",
        408: "the body was not received in time",
        413: "body or batch over the limit",
        422: "the upload is not an image or could not be decoded (never a clean answer)",
        503: "busy, timed out, or the index failed",
    }
    return {str(code): _json(_ERROR, text[code]) for code in codes}


_IMAGE_BODY = {
    "required": True,
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "description": "exactly one file part (any field name; HMA uses 'photo')",
                "additionalProperties": {"type": "string", "format": "binary"},
            }
        },
    },
}


def _signal_parameters() -> list[dict[str, Any]]:
    return [
        {"name": "signal_type", "in": "query", "required": True, "schema": {"type": "string", "example": "pdq"}},
        {"name": "signal", "in": "query", "required": True, "schema": {"type": "string"}, "description": "hash hex"},
    ]


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document of every route."""
    lookup_item = {
        "type": "object",
        "required": ["algorithm", "hex"],
        "properties": {
            "algorithm": {"type": "string", "description": "pdq, phash, ... or a digest: md5, sha1, sha256"},
            "hex": {"type": "string"},
            "quality": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
            "max_distance": {"type": ["integer", "null"], "minimum": 0, "description": "default: the service's"},
        },
    }
    match = {
        "type": "object",
        "properties": {
            "record": {"type": "integer"},
            "distance": {"type": "integer"},
            "algorithm": {"type": "string"},
            "list": {"type": "string"},
            "category": {"type": ["integer", "null"]},
            "series": {"type": ["string", "null"]},
            "name": {"type": ["string", "null"]},
            "comment": {"type": ["string", "null"]},
            "view": {"type": ["string", "null"]},
            "known_good": {"type": "boolean"},
        },
    }
    lookup_result = {
        "type": "object",
        "properties": {
            "algorithm": {"type": ["string", "null"]},
            "hex": {"type": ["string", "null"]},
            "status": {"enum": ["match", "no_match", "known_good", "skipped", "error"]},
            "max_distance": {"type": ["integer", "null"]},
            "matches": {"type": "array", "items": match},
            "skipped": {"type": ["string", "null"]},
            "error": {"type": "string", "description": "only with status error: why this entry was refused"},
        },
    }
    scan_record = {
        "type": "object",
        "description": "the scan's JSON Lines record (README: scan report fields)",
        "additionalProperties": True,
    }
    auth: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    paths: dict[str, Any] = {
        "/v1/match": {
            "post": {
                "summary": "Match an image as a scan would (nothing written to disk)",
                "security": auth,
                "requestBody": _IMAGE_BODY,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"enum": ["match", "no_match", "known_good"]},
                                "index_generation": {"type": "integer"},
                                "records": {"type": "array", "items": scan_record},
                            },
                        },
                        "the scan's records of the image (one per frame)",
                    ),
                    **_errors(400, 401, 408, 413, 422, 503),
                },
            }
        },
        "/v1/lookup": {
            "post": {
                "summary": "Look up a batch of hashes; one answer per hash, in order",
                "security": auth,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["hashes"],
                                "properties": {"hashes": {"type": "array", "items": lookup_item}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "index_generation": {"type": "integer"},
                                "results": {"type": "array", "items": lookup_result},
                            },
                        },
                        "per-hash answers (a bad entry gets status error, the others are answered)",
                    ),
                    **_errors(400, 401, 408, 413, 503),
                },
            }
        },
        "/v1/hash": {
            "post": {
                "summary": "Hash an image (matcher hash's records; no index)",
                "security": auth,
                "requestBody": _IMAGE_BODY,
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"records": {"type": "array", "items": scan_record}}},
                        "hash records",
                    ),
                    **_errors(400, 401, 408, 413, 422, 503),
                },
            }
        },
        "/v1/index": {
            "get": {
                "summary": "The index served: generation, counts, lists",
                "security": auth,
                "responses": {"200": _json({"type": "object"}, "index facts"), **_errors(401)},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Health: ok, or degraded (a new generation could not be opened; the last good one served)",
                "responses": {"200": _json({"type": "object"}, "health")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text metrics",
                "security": auth,
                "responses": {"200": {"description": "text/plain; version=0.0.4"}, **_errors(401)},
            }
        },
        "/m/raw_lookup": {
            "get": {
                "summary": "HMA 2.0: raw index lookup",
                "security": auth,
                "parameters": [
                    *_signal_parameters(),
                    {"name": "include_distance", "in": "query", "schema": {"type": "boolean"}},
                ],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"matches": {"type": "array"}}},
                        "record ids, or {content_id, distance} objects with include_distance=true",
                    ),
                    **_errors(400, 401, 503),
                },
            }
        },
        "/m/lookup": {
            "get": {
                "summary": "HMA 2.0: the lists (banks) a hash matches",
                "security": auth,
                "parameters": _signal_parameters(),
                "responses": {
                    "200": _json({"type": "array", "items": {"type": "string"}}, "list names"),
                    **_errors(400, 401, 503),
                },
            },
            "post": {
                "summary": "HMA 2.0: the lists (banks) an uploaded image matches, per signal type",
                "security": auth,
                "requestBody": _IMAGE_BODY,
                "responses": {
                    "200": _json(
                        {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                        "{signal type: [list names]}",
                    ),
                    **_errors(400, 401, 408, 413, 422, 503),
                },
            },
        },
        "/m/index/status": {
            "get": {
                "summary": "HMA 2.0: index status per signal type",
                "security": auth,
                "parameters": [{"name": "signal_type", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": _json({"type": "object"}, "{signal type: {present, built_to, size}}"),
                    **_errors(400, 401),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "matcher serve", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
    }
