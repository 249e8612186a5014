"""A small XenAPI client for dom0 plugins and scripts, shipped by xapi-rs.

Compatible with the ``XenAPI`` module plugins usually import::

    import XenAPI
    session = XenAPI.xapi_local()             # the local unix socket
    session.xenapi.login_with_password("root", "", "1.0", "my-plugin")
    hosts = session.xenapi.host.get_all()

    remote = XenAPI.Session("https://pool-master")   # or http://...
    remote.login_with_password("root", password)

``xapi_local()`` talks HTTP over the daemon's unix socket: ``$XAPI_SOCKET``
when set (xapi sets it for the plugins it runs), else ``/var/lib/xcp/xapi``.
"""

import os
import socket
import ssl

try:
    import xmlrpc.client as _xmlrpc
    import http.client as _httplib
except ImportError:  # Python 2
    import xmlrpclib as _xmlrpc  # type: ignore
    import httplib as _httplib  # type: ignore

API_VERSION_1_1 = "1.1"
API_VERSION_1_2 = "1.2"

DEFAULT_SOCKET = "/var/lib/xcp/xapi"


class Failure(Exception):
    """A XenAPI error: ``details`` is ``[code, param...]``."""

    def __init__(self, details):
        Exception.__init__(self, details)
        self.details = list(details)

    def __str__(self):
        return str(self.details)

    def _details_map(self):
        return dict((str(i), d) for i, d in enumerate(self.details))


class UDSHTTPConnection(_httplib.HTTPConnection):
    """HTTP over a unix socket; the URL's host part is ignored."""

    def __init__(self, path, timeout=None):
        _httplib.HTTPConnection.__init__(self, "localhost")
        self._socket_path = path
        if timeout is not None:
            self.timeout = timeout

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout not in (None, socket._GLOBAL_DEFAULT_TIMEOUT):
            sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


class UDSTransport(_xmlrpc.Transport):
    """An xmlrpc transport to a unix socket path."""

    def __init__(self, path=None, use_datetime=0):
        _xmlrpc.Transport.__init__(self, use_datetime)
        self._socket_path = path or os.environ.get("XAPI_SOCKET") or DEFAULT_SOCKET

    def make_connection(self, host):
        return UDSHTTPConnection(self._socket_path)


def _unwrap(result):
    if not isinstance(result, dict) or "Status" not in result:
        raise Failure(["INTERNAL_ERROR", "malformed XenAPI response: %r" % (result,)])
    if result["Status"] == "Success":
        return result.get("Value", "")
    raise Failure(result.get("ErrorDescription", ["INTERNAL_ERROR", "no ErrorDescription"]))


class _Dispatcher(object):
    def __init__(self, send, name):
        self._send = send
        self._name = name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        full = name if self._name is None else "%s.%s" % (self._name, name)
        return _Dispatcher(self._send, full)

    def __call__(self, *args):
        return self._send(self._name, args)

    def __repr__(self):
        return "<XenAPI method %s>" % self._name


class Session(_xmlrpc.ServerProxy):
    """A XenAPI session: ``session.xenapi.<class>.<message>(...)``.

    The session reference is ``session._session`` (``None`` until login); it
    is passed first on every call except the login messages.
    """

    def __init__(self, uri, transport=None, encoding=None, verbose=False,
                 allow_none=True, ignore_ssl=False):
        kwargs = {}
        if ignore_ssl and uri.startswith("https"):
            kwargs["context"] = ssl._create_unverified_context()
        _xmlrpc.ServerProxy.__init__(self, uri, transport, encoding, verbose,
                                     allow_none, **kwargs)
        self._session = None
        self._last_login_method = None
        self._last_login_params = None
        self.API_version = API_VERSION_1_1

    def _call(self, name, params):
        cls, _, short = name.rpartition(".")
        if cls in ("", "session") and (short.startswith("login")
                                       or short.startswith("slave_local_login")):
            return self._login("session." + short, params)
        if cls in ("", "session") and short in ("logout", "local_logout"):
            try:
                return _unwrap(self._request("session." + short, (self._session,)))
            finally:
                self._session = None
        try:
            return _unwrap(self._request(name, (self._session,) + tuple(params)))
        except Failure as e:
            # An expired session is renewed once with the last login's credentials.
            if e.details[:1] != ["SESSION_INVALID"] or self._last_login_method is None:
                raise
            self._login(self._last_login_method, self._last_login_params)
            return _unwrap(self._request(name, (self._session,) + tuple(params)))

    def xenapi_request(self, methodname, params):
        """Calls `methodname` (e.g. ``VM.get_all``) with the session prepended to `params`."""
        return self._call(methodname, params)

    def _request(self, name, params):
        return getattr(_xmlrpc.ServerProxy, "_ServerProxy__request")(self, name, params)

    def _login(self, name, params):
        wire = name if "." in name else "session." + name
        self._session = _unwrap(self._request(wire, tuple(params)))
        self._last_login_method = wire
        self._last_login_params = params
        self.API_version = self._get_api_version()
        return self._session

    def _get_api_version(self):
        try:
            pool = _unwrap(self._request("pool.get_all", (self._session,)))[0]
            host = _unwrap(self._request("pool.get_master", (self._session, pool)))
            major = _unwrap(self._request("host.get_API_version_major", (self._session, host)))
            minor = _unwrap(self._request("host.get_API_version_minor", (self._session, host)))
            return "%s.%s" % (major, minor)
        except Exception:  # pylint: disable=broad-except
            return API_VERSION_1_1

    def login_with_password(self, *params):
        """Logs in; returns the session reference."""
        return self._login("session.login_with_password", params)

    def logout(self):
        """Logs out of the current session."""
        return self._call("logout", ())

    def __getattr__(self, name):
        if name == "handle":
            return self._session
        if name == "xenapi":
            return _Dispatcher(self._call, None)
        if name.startswith("login") or name.startswith("slave_local"):
            return lambda *params: self._login(name, params)
        return _xmlrpc.ServerProxy.__getattr__(self, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._session is not None:
            try:
                self.logout()
            except Exception:  # pylint: disable=broad-except
                pass


def xapi_local():
    """A session object on the local daemon's unix socket."""
    return Session("http://_var_lib_xcp_xapi/", transport=UDSTransport())
