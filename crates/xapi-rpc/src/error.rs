//! `DecodeError`: why a wire body could not be turned into a call, response or value.
//!
//! Every decoder in this crate reports failures through this one type and never panics on
//! input. Messages quote at most a short prefix of the offending text so that a hostile body
//! cannot make an error (and the log line holding it) arbitrarily large.

/// How many characters of offending input an error message quotes.
const QUOTE_LIMIT: usize = 48;

/// Why a body could not be decoded; the HTTP layer answers any of these with HTTP 500.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The body is larger than `Limits::max_body` (checked before any parsing).
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the body received.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Arrays/structs are nested deeper than `Limits::max_depth`.
    #[error("values nested deeper than {0} levels")]
    TooDeep(usize),
    /// The document holds more values than `Limits::max_items`.
    #[error("document holds more than {0} values")]
    TooManyItems(usize),
    /// The body is not well-formed XML.
    #[error("malformed xml at byte {position}: {message}")]
    Xml {
        /// Byte offset near the problem.
        position: u64,
        /// What is wrong.
        message: String,
    },
    /// The body is not well-formed JSON.
    #[error("malformed json: {0}")]
    Json(String),
    /// Well-formed input whose shape is not an XML-RPC/JSON-RPC call, response or value.
    #[error("malformed {context}: {message}")]
    Shape {
        /// The thing being decoded (`methodCall`, `struct member`, `JSON-RPC request`, ...).
        context: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// An integer element whose text is not a 64-bit decimal integer.
    #[error("bad integer {0:?}")]
    BadInt(String),
    /// A `<double>` whose text is not a number.
    #[error("bad double {0:?}")]
    BadDouble(String),
    /// A `<boolean>` whose text is not `0`, `1`, `true` or `false`.
    #[error("bad boolean {0:?}")]
    BadBool(String),
    /// A `<base64>` whose text is not standard base64.
    #[error("bad base64 data: {0}")]
    BadBase64(String),
    /// Text that is not valid UTF-8.
    #[error("text is not valid utf-8")]
    InvalidUtf8,
}

impl DecodeError {
    /// A `Shape` error for `context`.
    pub(crate) fn shape(context: &'static str, message: impl Into<String>) -> Self {
        DecodeError::Shape {
            context,
            message: message.into(),
        }
    }
}

/// A short, single-line excerpt of `text` for an error message.
pub(crate) fn quote(text: &str) -> String {
    let mut out: String = text.chars().take(QUOTE_LIMIT).collect();
    if text.chars().nth(QUOTE_LIMIT).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
// Tests may unwrap: a panic is a test failure.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quote_truncates_long_text() {
        let long = "x".repeat(1000);
        let quoted = quote(&long);
        assert_eq!(quoted.len(), QUOTE_LIMIT + 3);
        assert!(quoted.ends_with("..."));
    }

    #[test]
    fn quote_keeps_short_text() {
        assert_eq!(quote("abc"), "abc");
    }

    #[test]
    fn display_is_lowercase_without_period() {
        let text = DecodeError::TooDeep(64).to_string();
        assert_eq!(text, "values nested deeper than 64 levels");
    }
}
