//! XML-RPC and JSON-RPC codecs for the XenAPI value model; knows nothing of classes.
//!
//! The crate turns request bodies into a [`Call`] (method name plus positional [`Value`]s)
//! and results into response bodies, in the exact shapes upstream xapi uses (see
//! `WIRE.md` sections 3, 4, 5 and 7). It never touches HTTP, the database or datamodel
//! types: coercing a `Value` into a typed field is the job of `xapi-idl`.
//!
//! Decoding is bounded by [`Limits`]: body size first, then nesting depth and the total
//! number of values, so hostile input yields a [`DecodeError`] rather than a panic or an
//! unbounded allocation.

mod decimal;
mod error;
pub mod jsonrpc;
pub mod value;
pub mod xmlrpc;

pub use error::DecodeError;
pub use value::Value;

/// One decoded remote call: `VM.start` with its positional parameters (session first).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The wire method name exactly as received, e.g. `VM.start` or `Async.VM.clone`.
    pub method: String,
    /// The positional parameters in wire order.
    pub params: Vec<Value>,
}

impl Call {
    /// A call of `method` with `params`.
    pub fn new(method: impl Into<String>, params: Vec<Value>) -> Self {
        Call {
            method: method.into(),
            params,
        }
    }
}

/// Bounds applied while decoding a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body in bytes; checked before any parsing.
    pub max_body: usize,
    /// Deepest accepted nesting of arrays and structs (a scalar at top level has depth 0,
    /// an array of scalars depth 1).
    pub max_depth: usize,
    /// Largest number of values (scalars, arrays and structs, at any depth) in one body.
    pub max_items: usize,
}

impl Default for Limits {
    /// 16 MiB, 64 levels, one million values.
    fn default() -> Self {
        Limits {
            max_body: 16 << 20,
            max_depth: 64,
            max_items: 1_000_000,
        }
    }
}

impl Limits {
    /// Fails with `TooLarge` when `body` is longer than `max_body`.
    pub(crate) fn check_body(&self, body: &[u8]) -> Result<(), DecodeError> {
        if body.len() > self.max_body {
            return Err(DecodeError::TooLarge {
                size: body.len(),
                limit: self.max_body,
            });
        }
        Ok(())
    }
}

/// A decoded response body, as a client (`xe`, tests, pool forwarding) sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `Status: Success` / JSON `result`: the method's result (`void` is the empty string).
    Success(Value),
    /// `Status: Failure` / JSON `error`: the error code followed by its parameters.
    Failure(Vec<String>),
    /// An XML-RPC `<fault>` (never sent by xapi itself, but by plugins and foreign servers).
    Fault {
        /// `faultCode`.
        code: i64,
        /// `faultString`.
        message: String,
    },
}

/// Counts values and nesting while a document is decoded, enforcing [`Limits`].
#[derive(Debug)]
pub(crate) struct Budget {
    max_depth: usize,
    max_items: usize,
    items: usize,
}

impl Budget {
    /// A fresh budget for one document.
    pub(crate) fn new(limits: &Limits) -> Self {
        Budget {
            max_depth: limits.max_depth,
            max_items: limits.max_items,
            items: 0,
        }
    }

    /// Accounts for one more value.
    pub(crate) fn take_item(&mut self) -> Result<(), DecodeError> {
        self.items += 1;
        if self.items > self.max_items {
            return Err(DecodeError::TooManyItems(self.max_items));
        }
        Ok(())
    }

    /// Fails when a container at nesting `depth` (1 for a top-level array) is too deep.
    pub(crate) fn check_depth(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > self.max_depth {
            return Err(DecodeError::TooDeep(self.max_depth));
        }
        Ok(())
    }
}

#[cfg(test)]
// Tests may unwrap: a panic is a test failure.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_match_the_documented_values() {
        let limits = Limits::default();
        assert_eq!(limits.max_body, 16 * 1024 * 1024);
        assert_eq!(limits.max_depth, 64);
        assert_eq!(limits.max_items, 1_000_000);
    }

    #[test]
    fn body_over_the_limit_is_rejected() {
        let limits = Limits {
            max_body: 4,
            ..Limits::default()
        };
        assert!(limits.check_body(b"1234").is_ok());
        assert_eq!(
            limits.check_body(b"12345"),
            Err(DecodeError::TooLarge { size: 5, limit: 4 })
        );
    }

    #[test]
    fn budget_counts_items_and_depth() {
        let mut budget = Budget::new(&Limits {
            max_items: 2,
            max_depth: 1,
            ..Limits::default()
        });
        assert!(budget.take_item().is_ok());
        assert!(budget.take_item().is_ok());
        assert_eq!(budget.take_item(), Err(DecodeError::TooManyItems(2)));
        assert!(budget.check_depth(1).is_ok());
        assert_eq!(budget.check_depth(2), Err(DecodeError::TooDeep(1)));
    }
}
