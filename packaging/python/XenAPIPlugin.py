"""Helpers for xapi host plugins (``host.call_plugin``), shipped by xapi-rs.

A plugin is an executable in the plugins directory (``/etc/xapi.d/plugins``).
xapi runs it with a single argument, an XML-RPC ``methodCall`` whose method
name is the requested function and whose parameters are the caller's session
reference and a struct of string arguments.  The plugin answers on stdout
with an XML-RPC ``methodResponse`` carrying a XenAPI result struct.

Typical use::

    import XenAPIPlugin

    def hello(session, args):
        return "hello " + args.get("name", "world")

    if __name__ == "__main__":
        XenAPIPlugin.dispatch({"hello": hello})
"""

import sys

try:
    import xmlrpc.client as _xmlrpc
except ImportError:  # Python 2
    import xmlrpclib as _xmlrpc  # type: ignore

import XenAPI


class Failure(Exception):
    """An error to report to the API caller as ``[code] + params``."""

    def __init__(self, code, params=None):
        Exception.__init__(self)
        self.code = code
        self.params = [code] + list(params or [])

    def __str__(self):
        return str(self.params)


def _response(result):
    return _xmlrpc.dumps((result,), methodresponse=True, allow_none=True)


def success_message(result):
    """The stdout document for a successful call returning ``result``."""
    return _response({"Status": "Success", "Value": result})


def failure_message(description):
    """The stdout document for a failure ``[code, param...]``."""
    return _response({"Status": "Failure",
                      "ErrorDescription": [str(d) for d in description]})


def _session_for(session_ref):
    session = XenAPI.xapi_local()
    session._session = session_ref
    return session


def dispatch(fn_table):
    """Runs the function named in ``sys.argv[1]`` from ``fn_table`` and prints its result.

    Each function is called as ``fn(session, args)`` where ``session`` is a
    ``XenAPI.Session`` bound to the caller's session and ``args`` the dict
    of string arguments.  Always exits with status 0 once the call was parsed.
    """
    if len(sys.argv) != 2:
        raise Exception("expected one argument (an XML-RPC methodCall), got %d"
                        % (len(sys.argv) - 1))
    params, name = _xmlrpc.loads(sys.argv[1])
    session_ref = params[0] if params else ""
    args = params[1] if len(params) > 1 else {}
    try:
        fn = fn_table.get(name)
        if fn is None:
            out = failure_message(["UNKNOWN_XENAPI_PLUGIN_FUNCTION", name])
        else:
            out = success_message(fn(_session_for(session_ref), args))
    except Failure as e:
        out = failure_message(e.params)
    except Exception as e:  # pylint: disable=broad-except
        out = failure_message(["XENAPI_PLUGIN_FAILURE", name,
                               e.__class__.__name__, str(e)])
    sys.stdout.write(out)
    sys.stdout.flush()
