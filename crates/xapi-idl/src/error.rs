//! `ApiError`, the one error every API call can answer, and value-conversion errors.
use std::fmt;

use xapi_rpc::Value;

/// A XenAPI failure: an upstream error code and its string parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The code, e.g. `HANDLE_INVALID`.
    pub code: String,
    /// The parameters, in the code's documented order.
    pub params: Vec<String>,
}

/// The result of an API call.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with any code; prefer the generated constructors in `errors`.
    pub fn new(code: &str, params: Vec<String>) -> ApiError {
        ApiError {
            code: code.to_owned(),
            params,
        }
    }

    /// `INTERNAL_ERROR [message]` for what should not happen; the message goes to the client.
    pub fn internal(message: impl fmt::Display) -> ApiError {
        ApiError::new("INTERNAL_ERROR", vec![message.to_string()])
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for p in &self.params {
            write!(f, " {p:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A wire value that does not fit the datamodel type it should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvError {
    /// What was expected (`int`, `struct`, `enum vm_power_state` ...).
    pub expected: String,
    /// What arrived (`string "abc"` ...), short.
    pub found: String,
    /// The field or parameter path, outermost first, when known.
    pub path: Vec<String>,
}

impl ConvError {
    /// A mismatch between `expected` and the value `v`.
    pub fn expected(expected: &str, v: &Value) -> ConvError {
        let found = match v {
            Value::String(s) if s.len() <= 64 => format!("string {s:?}"),
            other => other.kind().to_owned(),
        };
        ConvError {
            expected: expected.to_owned(),
            found,
            path: Vec::new(),
        }
    }

    /// Adds an enclosing field or parameter name.
    pub fn at(mut self, name: &str) -> ConvError {
        self.path.insert(0, name.to_owned());
        self
    }

    /// The dotted path, or `value` when there is none.
    pub fn field(&self) -> String {
        if self.path.is_empty() {
            "value".to_owned()
        } else {
            self.path.join(".")
        }
    }
}

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, found {}",
            self.field(),
            self.expected,
            self.found
        )
    }
}

impl From<ConvError> for ApiError {
    /// Compatibility: upstream reports a parameter of the wrong type as an internal error
    /// naming the conversion; we answer `FIELD_TYPE_ERROR [field]`, which clients handle alike
    /// and which says which parameter was wrong.
    fn from(e: ConvError) -> ApiError {
        ApiError::new("FIELD_TYPE_ERROR", vec![e.field()])
    }
}
