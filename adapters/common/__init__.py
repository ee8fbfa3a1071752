"""What every adapter shares: credentials, a typed hub client, safe XML parsing, a mapping harness."""

from adapters.common.auth import ClientCredentials, load_private_key
from adapters.common.client import HubClient, RetryPolicy, Upserted
from adapters.common.errors import AdapterError, HubError, HubUnavailable, UnsafeXml
from adapters.common.harness import assert_fields, get_path
from adapters.common.xmlsafe import XmlLimits, parse_xml

__all__ = [
    "AdapterError",
    "ClientCredentials",
    "HubClient",
    "HubError",
    "HubUnavailable",
    "RetryPolicy",
    "UnsafeXml",
    "Upserted",
    "XmlLimits",
    "assert_fields",
    "get_path",
    "load_private_key",
    "parse_xml",
]
