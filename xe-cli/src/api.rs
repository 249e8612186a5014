//! The XenAPI session xe works in: logs in on first use, encodes calls as XML-RPC, decodes
//! results and failures, and caches whole class tables so references can be printed as
//! UUIDs and names. Never prints anything.
use std::collections::HashMap;

use xapi_rpc::{xmlrpc, Call, Limits, Response, Value};

use crate::error::CliError;
use crate::transport::Connection;

/// The API version xe announces at login.
const API_VERSION: &str = "2.21";

/// A lazily logged-in session over one connection.
pub struct Api {
    conn: Connection,
    user: String,
    password: String,
    session: Option<String>,
    /// Class wire name -> ref -> record, filled on first need.
    tables: HashMap<String, HashMap<String, Value>>,
}

/// The `OpaqueRef:NULL` reference.
pub const NULL_REF: &str = "OpaqueRef:NULL";

/// A string parameter.
pub fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

impl Api {
    /// A session that logs in as `user` on first call.
    pub fn new(conn: Connection, user: String, password: String) -> Api {
        Api {
            conn,
            user,
            password,
            session: None,
            tables: HashMap::new(),
        }
    }

    /// Calls `method` without a session argument.
    pub fn call_raw(&mut self, method: &str, params: Vec<Value>) -> Result<Value, CliError> {
        let mut body = Vec::new();
        xmlrpc::encode_call(&Call::new(method, params), &mut body);
        let reply = self
            .conn
            .post("/", "text/xml", &body)
            .map_err(CliError::Transport)?;
        match xmlrpc::decode_response(&reply, &Limits::default()) {
            Ok(Response::Success(v)) => Ok(v),
            Ok(Response::Failure(mut e)) => {
                if e.is_empty() {
                    e.push("INTERNAL_ERROR".into());
                }
                let code = e.remove(0);
                Err(CliError::Api { code, params: e })
            }
            Ok(Response::Fault { code, message }) => Err(CliError::Transport(format!(
                "XML-RPC fault {code}: {message}"
            ))),
            Err(e) => Err(CliError::Transport(format!(
                "bad response from server: {e}"
            ))),
        }
    }

    /// The session reference, logging in first if needed.
    pub fn session(&mut self) -> Result<String, CliError> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let v = self.call_raw(
            "session.login_with_password",
            vec![
                s(&self.user.clone()),
                s(&self.password.clone()),
                s(API_VERSION),
                s("cli"),
            ],
        )?;
        let session = v
            .as_str()
            .ok_or_else(|| CliError::Transport("login returned no session".into()))?
            .to_owned();
        self.session = Some(session.clone());
        Ok(session)
    }

    /// Calls `method` with the session prepended.
    pub fn call(&mut self, method: &str, mut params: Vec<Value>) -> Result<Value, CliError> {
        let session = self.session()?;
        params.insert(0, Value::String(session));
        self.call_raw(method, params)
    }

    /// Calls `method` and expects a string (a ref or a uuid).
    pub fn call_string(&mut self, method: &str, params: Vec<Value>) -> Result<String, CliError> {
        match self.call(method, params)? {
            Value::String(s) => Ok(s),
            other => Err(CliError::Transport(format!(
                "{method} returned a {} where a string was expected",
                other.kind()
            ))),
        }
    }

    /// The connection's target (for HTTP transfers beside the RPC connection).
    pub fn target(&self) -> &crate::transport::Target {
        self.conn.target()
    }

    /// Logs out if logged in; errors are ignored as upstream does.
    pub fn logout(&mut self) {
        if self.session.is_some() {
            let _ = self.call("session.logout", Vec::new());
            self.session = None;
        }
    }

    /// Forgets the cached tables (after a command changed objects).
    pub fn invalidate(&mut self) {
        self.tables.clear();
    }

    /// `<class>.get_all_records_where(expr)` as (ref, record) pairs in server order.
    pub fn records_where(
        &mut self,
        class: &str,
        expr: &str,
    ) -> Result<Vec<(String, Value)>, CliError> {
        let v = self.call(&format!("{class}.get_all_records_where"), vec![s(expr)])?;
        Ok(struct_pairs(v))
    }

    /// One record (cached per class table).
    pub fn record(&mut self, class: &str, r: &str) -> Result<Option<Value>, CliError> {
        if r == NULL_REF || r.is_empty() {
            return Ok(None);
        }
        if !self.tables.contains_key(class) {
            let table: HashMap<String, Value> =
                match self.call(&format!("{class}.get_all_records"), Vec::new()) {
                    Ok(v) => struct_pairs(v).into_iter().collect(),
                    Err(CliError::Api { .. }) => HashMap::new(),
                    Err(e) => return Err(e),
                };
            self.tables.insert(class.to_owned(), table);
        }
        if let Some(rec) = self.tables.get(class).and_then(|t| t.get(r)) {
            return Ok(Some(rec.clone()));
        }
        // Not in the bulk table (created since, or a class without get_all_records).
        match self.call(&format!("{class}.get_record"), vec![s(r)]) {
            Ok(rec) => {
                if let Some(t) = self.tables.get_mut(class) {
                    t.insert(r.to_owned(), rec.clone());
                }
                Ok(Some(rec))
            }
            Err(CliError::Api { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `<class>.get_by_uuid`, mapping the server's failure to upstream's message.
    pub fn by_uuid(&mut self, class: &str, uuid: &str) -> Result<String, CliError> {
        self.call_string(&format!("{class}.get_by_uuid"), vec![s(uuid)])
    }
}

/// The members of a struct value (a map of ref to record) as owned pairs.
pub fn struct_pairs(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Struct(m) => m,
        _ => Vec::new(),
    }
}

/// A struct member as text (strings as-is; other scalars in their wire spelling).
pub fn field_text(rec: &Value, name: &str) -> String {
    match rec.get(name) {
        Some(Value::String(s)) | Some(Value::DateTime(s)) => s.clone(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Double(d)) => d.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_text_reads_strings_and_scalars() {
        let rec = Value::Struct(vec![
            ("a".into(), s("x")),
            ("b".into(), Value::Int(3)),
            ("c".into(), Value::Bool(true)),
        ]);
        assert_eq!(field_text(&rec, "a"), "x");
        assert_eq!(field_text(&rec, "b"), "3");
        assert_eq!(field_text(&rec, "c"), "true");
        assert_eq!(field_text(&rec, "zz"), "");
    }
}
