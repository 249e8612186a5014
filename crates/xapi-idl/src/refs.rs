//! Typed object references: `Ref<classes::Vm>` is an `OpaqueRef:<uuid>` of a VM.
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// A datamodel class, implemented by the generated marker types in `classes`.
pub trait Class: 'static {
    /// The wire name (`VM`).
    const NAME: &'static str;
    /// The class's position in the datamodel.
    const INDEX: usize;
}

/// The null reference's wire form.
pub const NULL_REF: &str = "OpaqueRef:NULL";

/// A reference to an object of class `C`, as the wire spells it.
pub struct Ref<C> {
    raw: String,
    class: PhantomData<fn() -> C>,
}

impl<C> Ref<C> {
    /// The null reference (`OpaqueRef:NULL`).
    pub fn null() -> Ref<C> {
        Ref::from_raw(NULL_REF)
    }

    /// A fresh random reference.
    pub fn fresh() -> Ref<C> {
        Ref::from_raw(&format!("OpaqueRef:{}", uuid::Uuid::new_v4()))
    }

    /// Wraps a wire string without checking it.
    pub fn from_raw(raw: &str) -> Ref<C> {
        Ref {
            raw: raw.to_owned(),
            class: PhantomData,
        }
    }

    /// Wraps an owned wire string without checking it.
    pub fn from_string(raw: String) -> Ref<C> {
        Ref {
            raw,
            class: PhantomData,
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether this is the null reference (or the empty string clients send for it).
    pub fn is_null(&self) -> bool {
        self.raw == NULL_REF || self.raw.is_empty()
    }

    /// Consumes the reference, returning the wire string.
    pub fn into_string(self) -> String {
        self.raw
    }
}

impl<C> Clone for Ref<C> {
    fn clone(&self) -> Self {
        Ref::from_raw(&self.raw)
    }
}

impl<C> PartialEq for Ref<C> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<C> Eq for Ref<C> {}

impl<C> PartialOrd for Ref<C> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<C> Ord for Ref<C> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.raw.cmp(&other.raw)
    }
}

impl<C> Hash for Ref<C> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.raw.hash(state)
    }
}

impl<C> Default for Ref<C> {
    fn default() -> Self {
        Ref::null()
    }
}

impl<C> fmt::Debug for Ref<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl<C> fmt::Display for Ref<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}
