"""The update client (`ddns-server client`): find the public address, update on change.

Pure standard library plus dnspython and PyYAML, no Twisted, so it runs
unchanged on Linux, macOS and Windows. Modules:

- ``addresses``: address sources (check-IP URLs, a local interface, the
  route's source address), their classification and the consensus of sources.
- ``config``: the client's own YAML file, read strictly (file:line errors).
- ``state``: what was last sent per hostname and family, written atomically.
- ``updaters``: RFC 2136 with TSIG and DynDNS2 over HTTP(S).
- ``runner``: one pass (``--once``) or the loop, retries with backoff.
"""
