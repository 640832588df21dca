"""Names vulture reports that are used, but by a framework: `make dead` passes this file.

Twisted and prometheus-client call these methods and read these attributes
themselves. The mirrors' provider interface (mirrors/base.py) is for the
providers being written.
Add a name here only after checking it really is used.
"""

# ruff: noqa
# fmt: off
maxPacketSize  # unused variable (ddns_server/edge/dns.py:59)
_.doRead  # unused method (ddns_server/edge/dns.py:61)
_.connectionMade  # unused method (ddns_server/edge/dns.py:159)
_.stringReceived  # unused method (ddns_server/edge/dns.py:165)
_.timeoutConnection  # unused method (ddns_server/edge/dns.py:173)
_.buildProtocol  # unused method (ddns_server/edge/dns.py:183)
isLeaf  # unused variable (ddns_server/edge/dyndns_http.py:79)
_.render_GET  # unused method (ddns_server/edge/dyndns_http.py:98)
_.render_POST  # unused method (ddns_server/edge/dyndns_http.py:101)
isLeaf  # unused variable (ddns_server/edge/dyndns_http.py:170)
_.render_GET  # unused method (ddns_server/edge/dyndns_http.py:176)
isLeaf  # unused variable (ddns_server/edge/http.py:16)
_.render_GET  # unused method (ddns_server/edge/http.py:22)
isLeaf  # unused variable (ddns_server/edge/http.py:33)
_.render_GET  # unused method (ddns_server/edge/http.py:39)
_.datagramReceived  # unused method (ddns_server/edge/notify.py:67)
_.displayTracebacks  # unused attribute (ddns_server/edge/service.py:103)
_.collect  # unused method (ddns_server/metrics.py:71)
# Mirror provider modules: read by the config reader and the engine by name
# (module.EXTRA/LIBRARY/OPTIONS/PASSTHROUGH, the provider class), see mirrors/options.py
EXTRA  # pip extra of a provider module (ddns_server/mirrors/*.py)
LIBRARY  # importable module a provider needs (ddns_server/mirrors/*.py)
PASSTHROUGH  # octodns: options beyond OPTIONS go to the plug-in (ddns_server/mirrors/octodns.py)
_.required  # Option field (ddns_server/mirrors/options.py)
_.help  # Option field (ddns_server/mirrors/options.py)
Route53Provider  # loaded by provider name (ddns_server/mirrors/route53.py)
CloudflareProvider  # loaded by provider name (ddns_server/mirrors/cloudflare.py)
DnspodProvider  # loaded by provider name (ddns_server/mirrors/dnspod.py)
OctodnsProvider  # loaded by provider name (ddns_server/mirrors/octodns.py)
_._create_connection  # http.client.HTTPConnection calls it: one address family (ddns_server/client/addresses.py)
# Twisted HTTPChannel/LineReceiver knobs and callbacks (ddns_server/edge/http_limits.py)
_.timeOut  # TimeoutMixin's idle timeout
_.MAX_LENGTH  # LineReceiver's line cap
_.lineLengthExceeded  # LineReceiver callback
_._respondToBadRequestAndDisconnect  # HTTPChannel's 400 path, answered by _reply
_.dataReceived  # replaced after a reply, to ignore the rest
_.doWrite  # Twisted IWriteDescriptor (ddns_server/edge/probes.py)
_.connectionLost  # Twisted IFileDescriptor (ddns_server/edge/probes.py)
_.logPrefix  # Twisted ILoggingContext (ddns_server/edge/probes.py)
_.clientConnectionForTLS  # Twisted IOpenSSLClientConnectionCreator (ddns_server/edge/probes.py)
_.creatorForNetloc  # Twisted IPolicyForHTTPS (ddns_server/edge/probes.py)
Rfc2136Provider  # loaded by name (mirrors/registry.py)
