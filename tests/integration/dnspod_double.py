"""A loopback double of the DNSPod API 3.0 actions (version 2021-03-23) the
provider uses, written from Tencent Cloud's documentation: DescribeRecordList,
CreateRecord, ModifyRecord, DeleteRecord.

Requests are JSON POSTs to "/" with X-TC-Action and a TC3-HMAC-SHA256
Authorization header. The double does not verify the signature, but it checks
that the header is there and that its Credential's SecretId is one it knows
(AuthFailure.InvalidAuthorization / AuthFailure.SecretIdNotFound otherwise).
Answers are HTTP 200 {"Response": {..., "RequestId"}} with Error {Code,
Message} on failure, as Tencent's API answers. Each domain starts with DNSPod's
two default NS records at "@". `fail_next(code)` queues an error answer
(RequestLimitExceeded, InternalError) for the next request. It is a double,
not DNSPod.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TYPES = {"A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA"}
LINES = {"默认", "电信", "联通", "移动", "境外"}
CREDENTIAL = re.compile(
    r"^TC3-HMAC-SHA256 Credential=([^/]+)/\d{4}-\d{2}-\d{2}/dnspod/tc3_request,"
)


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class DnspodDouble:
    secret_ids: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)  # RecordId -> record
    calls: list[str] = field(default_factory=list)  # actions, in order
    max_limit: int = 3000
    canned: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    next_id: int = 1000
    endpoint: str = ""

    # -- control from tests

    def add_domain(self, domain: str) -> None:
        self.domains.add(domain)
        for ns in ("f1g1ns1.dnspod.net.", "f1g1ns2.dnspod.net."):
            self._store(domain, {"SubDomain": "@", "RecordType": "NS", "Value": ns, "TTL": 86400})
        for record in self.records.values():
            record["DefaultNS"] = record["Type"] == "NS"

    def add_record(self, domain: str, params: dict[str, Any]) -> int:
        with self.lock:
            return self._create(domain, {"RecordLine": "默认", **params})

    def domain_records(self, domain: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.records.values() if r["Domain"] == domain]

    def fail_next(self, code: str, times: int = 1) -> None:
        self.canned.extend([code] * times)

    @property
    def writes(self) -> list[str]:
        return [c for c in self.calls if c != "DescribeRecordList"]

    def start(self) -> str:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                double.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.endpoint

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- the API

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b"{}"
        action = request.headers.get("X-TC-Action", "")
        with self.lock:
            self.calls.append(action)
            try:
                if self.canned:
                    raise ApiError(self.canned.pop(0), "canned failure")
                result = self._dispatch(request, action, json.loads(raw or b"{}"))
                body: dict[str, Any] = {"Response": {**result, "RequestId": str(uuid.uuid4())}}
            except ApiError as exc:
                body = {
                    "Response": {
                        "Error": {"Code": exc.code, "Message": exc.message},
                        "RequestId": str(uuid.uuid4()),
                    }
                }
        data = json.dumps(body, ensure_ascii=False).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _dispatch(
        self, request: BaseHTTPRequestHandler, action: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        auth = request.headers.get("Authorization", "")
        match = CREDENTIAL.match(auth)
        if not match or "Signature=" not in auth:
            raise ApiError("AuthFailure.InvalidAuthorization", "Authorization header is invalid.")
        if match.group(1) not in self.secret_ids:
            raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        if request.headers.get("X-TC-Version") != "2021-03-23":
            raise ApiError("NoSuchVersion", "The API version does not exist.")
        handler = {
            "DescribeRecordList": self._describe,
            "CreateRecord": self._create_action,
            "ModifyRecord": self._modify,
            "DeleteRecord": self._delete,
        }.get(action)
        if handler is None:
            raise ApiError("InvalidAction", f"The action {action} does not exist.")
        domain = str(params.get("Domain", ""))
        if domain not in self.domains:
            raise ApiError("InvalidParameterValue.DomainNotExists", "The domain does not exist.")
        return handler(domain, params)

    def _describe(self, domain: str, params: dict[str, Any]) -> dict[str, Any]:
        sub = params.get("SubDomain") or params.get("Subdomain")
        rdtype = params.get("RecordType")
        items = [
            r
            for r in sorted(self.records.values(), key=lambda r: r["RecordId"])
            if r["Domain"] == domain
            and (not sub or r["Name"] == str(sub).lower())
            and (not rdtype or r["Type"] == rdtype)
        ]
        offset = int(params.get("Offset", 0))
        limit = min(int(params.get("Limit", 100)), self.max_limit)
        chunk = items[offset : offset + limit]
        if not chunk and params.get("ErrorOnEmpty", "yes") != "no":
            raise ApiError("ResourceNotFound.NoDataOfRecord", "No records.")
        public = [{k: v for k, v in r.items() if k != "Domain"} for r in chunk]
        return {
            "RecordCountInfo": {
                "SubdomainCount": len({r["Name"] for r in items}),
                "ListCount": len(chunk),
                "TotalCount": len(items),
            },
            "RecordList": public,
        }

    def _create_action(self, domain: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"RecordId": self._create(domain, params)}

    def _create(self, domain: str, params: dict[str, Any]) -> int:
        record = self._validate(params)
        same = [
            r
            for r in self.records.values()
            if r["Domain"] == domain
            and all(r[k] == record[k] for k in ("Name", "Type", "Value", "Line", "MX"))
        ]
        if same:
            raise ApiError("InvalidParameter.DomainRecordExist", "The record already exists.")
        return self._store(domain, params)

    def _store(self, domain: str, params: dict[str, Any]) -> int:
        record = self._validate({"RecordLine": "默认", **params})
        self.next_id += 1
        record.update(RecordId=self.next_id, Domain=domain)
        self.records[self.next_id] = record
        return self.next_id

    def _modify(self, domain: str, params: dict[str, Any]) -> dict[str, Any]:
        record_id = int(params.get("RecordId", 0))
        record = self.records.get(record_id)
        if record is None or record["Domain"] != domain:
            raise ApiError("InvalidParameter.RecordIdInvalid", "The record id is invalid.")
        record.update(self._validate(params))
        return {"RecordId": record_id}

    def _delete(self, domain: str, params: dict[str, Any]) -> dict[str, Any]:
        record_id = int(params.get("RecordId", 0))
        record = self.records.get(record_id)
        if record is None or record["Domain"] != domain:
            raise ApiError("InvalidParameter.RecordIdInvalid", "The record id is invalid.")
        del self.records[record_id]
        return {}

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        rdtype = params.get("RecordType")
        if rdtype not in TYPES:
            raise ApiError("InvalidParameter.RecordTypeInvalid", "The record type is invalid.")
        line = params.get("RecordLine")
        if line not in LINES:
            raise ApiError("InvalidParameter.RecordLineInvalid", "The record line is invalid.")
        value = str(params.get("Value", ""))
        if not value:
            raise ApiError("MissingParameter", "Value is required.")
        if rdtype in ("A", "AAAA"):
            try:
                ok = ipaddress.ip_address(value).version == (4 if rdtype == "A" else 6)
            except ValueError:
                ok = False
            if not ok:
                raise ApiError(
                    "InvalidParameter.RecordValueInvalid", "The record value is invalid."
                )
        mx = params.get("MX")
        if rdtype == "MX" and not (isinstance(mx, int) and 0 <= mx <= 65535):
            raise ApiError("InvalidParameter.MxInvalid", "MX priority is invalid.")
        ttl = int(params.get("TTL", 600))
        if not 1 <= ttl <= 604800:
            raise ApiError("LimitExceeded.RecordTtlLimit", "The TTL is out of range.")
        if rdtype in ("CNAME", "MX", "NS") and not value.endswith("."):
            value += "."  # DNSPod answers targets with the trailing dot
        return {
            "Name": str(params.get("SubDomain") or "@").lower(),
            "Type": rdtype,
            "Value": value,
            "Line": line,
            "LineId": "0",
            "Status": "ENABLE",
            "Weight": None,
            "MonitorStatus": "",
            "Remark": "",
            "TTL": ttl,
            "MX": mx if rdtype == "MX" else 0,
            "DefaultNS": False,
            "UpdatedOn": "2026-01-01 00:00:00",
        }
