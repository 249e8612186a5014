//! XML-RPC and JSON-RPC codecs for the XenAPI value model; knows nothing of classes.
pub mod value;
pub use value::Value;
