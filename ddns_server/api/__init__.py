"""The HTTP management API, pure: tokens and scopes (tokens.py), request ->
changeset logic (records.py), /api/v1 (v1.py), the Cloudflare-compatible
/client/v4 subset (cloudflare.py) and the OpenAPI document (openapi.py).

No Twisted here: ddns_server/edge/api_http.py moves the bytes. Every change
ends in `Store.write` with channel `api` and the token's name as who.
"""
