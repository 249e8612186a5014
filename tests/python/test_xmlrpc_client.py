#!/usr/bin/env python3
"""Drives a running xapi-rs daemon with Python's standard library only, as third-party
XenAPI clients do: xmlrpc.client over HTTP, HTTPS and the unix socket, and JSON-RPC via urllib.

Environment: XAPI_HTTP, XAPI_HTTPS, XAPI_SOCKET, XAPI_PASSWORD (set by the Rust system test).
"""
import http.client
import json
import os
import socket
import ssl
import unittest
import urllib.request
import xmlrpc.client

HTTP = os.environ["XAPI_HTTP"]
HTTPS = os.environ["XAPI_HTTPS"]
SOCKET = os.environ["XAPI_SOCKET"]
PASSWORD = os.environ["XAPI_PASSWORD"]


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


class UnixTransport(xmlrpc.client.Transport):
    """The transport XenAPI.py's xapi_local() uses: HTTP over the local unix socket."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def make_connection(self, host):
        return UnixConnection(self.path)


def value(reply):
    """Unwraps a XenAPI envelope, raising on Failure as the official bindings do."""
    if reply["Status"] == "Success":
        return reply["Value"]
    raise RuntimeError(reply["ErrorDescription"])


def proxies():
    return {
        "http": xmlrpc.client.ServerProxy(HTTP),
        "https": xmlrpc.client.ServerProxy(HTTPS, context=ssl._create_unverified_context()),
        "unix": xmlrpc.client.ServerProxy("http://_var_lib_xcp_xapi", transport=UnixTransport(SOCKET)),
    }


class XmlRpcClient(unittest.TestCase):
    def test_login_everywhere_and_list_every_class(self):
        for name, proxy in proxies().items():
            with self.subTest(endpoint=name):
                session = value(proxy.session.login_with_password("root", PASSWORD, "1.0", "python-test"))
                self.assertTrue(session.startswith("OpaqueRef:"))
                classes = ["pool", "host", "host_metrics", "host_cpu", "VM", "VM_metrics", "network", "SM", "role", "task"]
                for cls in classes:
                    records = value(getattr(proxy, cls).get_all_records(session))
                    self.assertIsInstance(records, dict, cls)
                    if cls != "task":
                        self.assertGreater(len(records), 0, cls)
                value(proxy.session.logout(session))

    def test_read_and_write_fields(self):
        proxy = proxies()["http"]
        session = value(proxy.session.login_with_password("root", PASSWORD))
        net = value(proxy.network.create(session, {"name_label": "py-net", "other_config": {"a": "b"}}))
        value(proxy.network.set_name_description(session, net, "from python"))
        record = value(proxy.network.get_record(session, net))
        self.assertEqual(record["name_label"], "py-net")
        self.assertEqual(record["name_description"], "from python")
        self.assertEqual(record["other_config"], {"a": "b"})
        self.assertEqual(record["MTU"], "1500")  # ints travel untyped, as upstream sends them
        value(proxy.network.add_to_other_config(session, net, "c", "d"))
        with self.assertRaises(RuntimeError) as failure:
            value(proxy.network.add_to_other_config(session, net, "c", "e"))
        self.assertEqual(failure.exception.args[0][0], "MAP_DUPLICATE_KEY")
        found = value(proxy.network.get_all_records_where(session, 'field "name__label"="py-net"'))
        self.assertEqual(list(found), [net])
        value(proxy.network.destroy(session, net))
        with self.assertRaises(RuntimeError) as failure:
            value(proxy.network.get_record(session, net))
        self.assertEqual(failure.exception.args[0], ["HANDLE_INVALID", "network", net])

    def test_errors_have_upstream_shapes(self):
        proxy = proxies()["http"]
        with self.assertRaises(RuntimeError) as failure:
            value(proxy.session.login_with_password("root", "wrong"))
        self.assertEqual(failure.exception.args[0][0], "SESSION_AUTHENTICATION_FAILED")
        with self.assertRaises(RuntimeError) as failure:
            value(proxy.VM.get_all("OpaqueRef:bogus"))
        self.assertEqual(failure.exception.args[0], ["SESSION_INVALID", "OpaqueRef:bogus"])
        methods = proxy.system.listMethods()
        self.assertIn("VM.get_record", methods)

    def test_json_rpc(self):
        def call(method, params, version=None):
            body = {"method": method, "params": params, "id": 7}
            if version:
                body["jsonrpc"] = version
            req = urllib.request.Request(HTTP + "/jsonrpc", json.dumps(body).encode(), {"Content-Type": "application/json"})
            with urllib.request.urlopen(req) as reply:
                self.assertEqual(reply.headers["Content-Type"], "application/json")
                return json.loads(reply.read())

        session = call("session.login_with_password", ["root", PASSWORD], "2.0")["result"]
        hosts = call("host.get_all_records", [session])
        self.assertIsNone(hosts["error"])
        host = next(iter(hosts["result"].values()))
        self.assertIsInstance(host["API_version_major"], int)  # JSON carries real ints
        error = call("host.get_record", [session, "OpaqueRef:nope"], "2.0")["error"]
        self.assertEqual(error, {"code": 1, "message": "HANDLE_INVALID", "data": ["host", "OpaqueRef:nope"]})


if __name__ == "__main__":
    unittest.main(verbosity=2)
