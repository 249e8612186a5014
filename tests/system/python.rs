//! Python's stdlib `xmlrpc.client`, a real third-party XenAPI client, against the daemon.
use std::process::Command;

use xapi_system_tests::TestDaemon;

#[test]
fn python_xmlrpc_client_over_http_https_and_unix() {
    let d = TestDaemon::start();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/test_xmlrpc_client.py");
    let out = Command::new("python3")
        .arg(&script)
        .env("XAPI_HTTP", format!("http://{}", d.http))
        .env("XAPI_HTTPS", format!("https://{}", d.https))
        .env("XAPI_SOCKET", &d.socket)
        .env("XAPI_PASSWORD", "test-root-password")
        .output()
        .expect("python3 is installed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python tests failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("OK"),
        "unittest did not report OK:\n{stderr}"
    );
}
