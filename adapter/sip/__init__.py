"""SIP pieces shared by both fronts: transfer modes and their settings, the headers sent
to GenerativeAgent, the Refer-To it sends back, and the ids carried in a returnURI.

Pure functions and plain data: no Flask, no AMI, no I/O.
"""

from adapter.sip.headers import (
    CALL_TRANSFER_ID_HEADER,
    FittedHeaders,
    Header,
    api_headers,
    fit_headers,
    ga_headers,
    sip_uri_with_headers,
    uri_header_cost,
)
from adapter.sip.refer import GaReturn, ReferTo, ga_return, parse_refer_to
from adapter.sip.return_uri import (
    TRANSFER_PARAM,
    return_uri_for,
    split_transfer_id,
    transfer_id_in,
)
from adapter.sip.settings import SipTransferSettings, TransferMode

__all__ = [
    "CALL_TRANSFER_ID_HEADER",
    "TRANSFER_PARAM",
    "FittedHeaders",
    "GaReturn",
    "Header",
    "ReferTo",
    "SipTransferSettings",
    "TransferMode",
    "api_headers",
    "fit_headers",
    "ga_headers",
    "ga_return",
    "parse_refer_to",
    "return_uri_for",
    "sip_uri_with_headers",
    "split_transfer_id",
    "transfer_id_in",
    "uri_header_cost",
]
