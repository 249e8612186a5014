//! `vm-export` and `vm-import`: the file moves over its own HTTP connection (`GET /export`,
//! `PUT /import`) while a task created by xe carries the server's outcome, as upstream's xe
//! does. Export prints `Export succeeded`; import prints the new VMs' uuids.
//!
//! Export passes upstream's options on: `compress=true|gzip|zstd` as `use_compression`,
//! `preserve-power-state`, `include-snapshots` as `export_snapshots`, and `metadata=true`
//! (with `excluded-device-types`) as a request to `/export_metadata` instead of `/export`.
//! An import needs no option for a compressed file: the server recognises it.
use xapi_rpc::Value;

use crate::api::{s, Api};
use crate::args::CommandLine;
use crate::error::{fail, CliError};
use crate::ops::default_sr;
use crate::printer::Printer;
use crate::select::Obj;
use crate::task;
use crate::transport::{self, Body};

/// Percent-encodes a query value.
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Why a transfer the server refused failed: the task's error when the server recorded one,
/// else upstream's `<label> failed, unknown error.`.
fn failed(api: &mut Api, t: &str, label: &str) -> CliError {
    let unknown = CliError::Stderr(format!("{label} failed, unknown error."));
    match api.call_string("task.get_status", vec![s(t)]) {
        Ok(st) if st != "pending" => match task::result(api, t) {
            Err(e @ CliError::Api { .. }) => e,
            _ => unknown,
        },
        _ => unknown,
    }
}

/// The export options of a `vm-export` (or template/snapshot export) command line.
#[derive(Debug, PartialEq)]
struct ExportOptions {
    /// `use_compression`: `false`, `gzip` or `zstd`, as upstream's `to_string`.
    compression: &'static str,
    preserve_power_state: bool,
    export_snapshots: bool,
    /// `Some(excluded-device-types)` for a metadata-only export.
    metadata: Option<String>,
}

impl ExportOptions {
    fn from_command(cmd: &CommandLine) -> Self {
        // As upstream's `Compression_algorithms.of_string`: anything else means none.
        let compression = match cmd.get("compress") {
            Some("true" | "gzip") => "gzip",
            Some("zstd") => "zstd",
            _ => "false",
        };
        Self {
            compression,
            preserve_power_state: cmd.flag("preserve-power-state"),
            export_snapshots: cmd.flag("include-snapshots"),
            metadata: cmd
                .flag("metadata")
                .then(|| cmd.get("excluded-device-types").unwrap_or("").to_owned()),
        }
    }

    /// The request path, in upstream's parameter order.
    fn path(&self, session: &str, task: &str, vm: &str) -> String {
        let endpoint = if self.metadata.is_some() {
            "/export_metadata"
        } else {
            "/export"
        };
        let mut path = format!(
            "{endpoint}?session_id={}&task_id={}&ref={}&use_compression={}&preserve_power_state={}&export_snapshots={}",
            enc(session),
            enc(task),
            enc(vm),
            self.compression,
            self.preserve_power_state,
            self.export_snapshots
        );
        if let Some(excluded) = &self.metadata {
            path.push_str(&format!("&excluded_device_types={}", enc(excluded)));
        }
        path
    }
}

/// Exports one VM to `filename`, with the export options of command line `cmd`.
pub fn export_one(
    api: &mut Api,
    p: &mut Printer,
    cmd: &CommandLine,
    vm: &Obj,
    filename: &str,
) -> Result<(), CliError> {
    let options = ExportOptions::from_command(cmd);
    let uuid = crate::api::field_text(&vm.1, "uuid");
    let t = api.call_string("task.create", vec![s("Export of VM"), s(&uuid)])?;
    let result = (|| {
        let session = api.session()?;
        let path = options.path(&session, &t, &vm.0);
        let mut file = std::fs::File::create(filename)
            .map_err(|e| fail(format!("Failed to open file {filename}: {e}")))?;
        let target = api.target().clone();
        let (status, _) = transport::transfer(&target, &path, Body::Download(&mut file))
            .map_err(CliError::Transport)?;
        if status != 200 {
            drop(file);
            let _ = std::fs::remove_file(filename);
            return Err(failed(api, &t, "Export"));
        }
        task::wait(api, &t)?;
        task::result(api, &t)?;
        p.list(&["Export succeeded".to_owned()]);
        Ok(())
    })();
    let _ = api.call("task.destroy", vec![s(&t)]);
    result
}

/// `vm-import filename=<f> [sr-uuid=<sr>]`.
pub fn import(api: &mut Api, p: &mut Printer, cmd: &CommandLine) -> Result<(), CliError> {
    let filename = cmd.reqd("filename")?.to_owned();
    let sr = match cmd.get("sr-uuid") {
        Some(u) => api.by_uuid("SR", u)?,
        None => {
            default_sr(api)?.ok_or_else(|| fail("No SR specified and Pool default SR is null"))?
        }
    };
    let mut file = std::fs::File::open(&filename)
        .map_err(|e| fail(format!("Failed to open file {filename}: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| fail(format!("Failed to open file {filename}: {e}")))?
        .len();
    let t = api.call_string("task.create", vec![s("VM import"), s("")])?;
    let result = (|| {
        let session = api.session()?;
        let path = format!(
            "/import?session_id={}&task_id={}&restore={}&force={}&dry_run=false&sr_id={}",
            enc(&session),
            enc(&t),
            cmd.flag("preserve"),
            cmd.flag("force"),
            enc(&sr)
        );
        let target = api.target().clone();
        let (status, _) = transport::transfer(&target, &path, Body::Upload(&mut file, len))
            .map_err(CliError::Transport)?;
        if status != 200 {
            return Err(failed(api, &t, "VM import"));
        }
        task::wait(api, &t)?;
        let refs = task::result(api, &t)?;
        let mut uuids = Vec::new();
        if let Value::Array(items) = refs {
            for r in items.iter().filter_map(Value::as_str) {
                uuids.push(api.call_string("VM.get_uuid", vec![s(r)])?);
            }
        }
        p.list(&[uuids.join(",")]);
        Ok(())
    })();
    let _ = api.call("task.destroy", vec![s(&t)]);
    result
}

/// A file moved over HTTP beside a task xe creates, as upstream's `track_http_operation`:
/// `GET` (download into `filename`) or `PUT` (upload it) of `endpoint` with the session, the
/// task and `query`; the task's result once the server finished it.
pub fn http_file(
    api: &mut Api,
    endpoint: &str,
    query: &[(&str, String)],
    filename: &str,
    upload: bool,
    label: &str,
) -> Result<Value, CliError> {
    let t = api.call_string("task.create", vec![s(label), s("")])?;
    let result = (|| {
        let session = api.session()?;
        let mut path = format!(
            "{endpoint}?session_id={}&task_id={}",
            enc(&session),
            enc(&t)
        );
        for (k, v) in query {
            path.push_str(&format!("&{k}={}", enc(v)));
        }
        let target = api.target().clone();
        let opened = |e: std::io::Error| fail(format!("Failed to open file {filename}: {e}"));
        let (status, _) = if upload {
            let mut file = std::fs::File::open(filename).map_err(opened)?;
            let len = file.metadata().map_err(opened)?.len();
            transport::transfer(&target, &path, Body::Upload(&mut file, len))
        } else {
            let mut file = std::fs::File::create(filename).map_err(opened)?;
            transport::transfer(&target, &path, Body::Download(&mut file))
        }
        .map_err(CliError::Transport)?;
        if status != 200 {
            if !upload {
                let _ = std::fs::remove_file(filename);
            }
            return Err(failed(api, &t, label));
        }
        task::wait(api, &t)?;
        task::result(api, &t)
    })();
    let _ = api.call("task.destroy", vec![s(&t)]);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(enc("OpaqueRef:a b/c"), "OpaqueRef:a%20b%2Fc");
    }

    fn cmd(params: &[(&str, &str)]) -> CommandLine {
        CommandLine {
            name: "vm-export".into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn export_options_become_upstreams_query() {
        let o = ExportOptions::from_command(&cmd(&[("compress", "true")]));
        assert_eq!(
            o.path("S", "T", "R"),
            "/export?session_id=S&task_id=T&ref=R&use_compression=gzip\
             &preserve_power_state=false&export_snapshots=false"
        );
        let o = ExportOptions::from_command(&cmd(&[
            ("compress", "zstd"),
            ("preserve-power-state", "true"),
            ("include-snapshots", "true"),
            ("metadata", "true"),
            ("excluded-device-types", "VIF,VBD"),
        ]));
        assert_eq!(
            o.path("S", "T", "R"),
            "/export_metadata?session_id=S&task_id=T&ref=R&use_compression=zstd\
             &preserve_power_state=true&export_snapshots=true&excluded_device_types=VIF%2CVBD"
        );
        let o = ExportOptions::from_command(&cmd(&[("compress", "no")]));
        assert_eq!(o.compression, "false");
        assert_eq!(ExportOptions::from_command(&cmd(&[])).compression, "false");
    }
}
