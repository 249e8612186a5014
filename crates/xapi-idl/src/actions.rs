//! The base of the generated per-class actions traits, and `actions!` to implement them.

/// What every actions trait shares: the context type the daemon passes to each call.
pub trait ActionsBase {
    /// Per-call context (session, object store, ...), chosen by the implementor.
    type Ctx;
}

/// Implements a generated actions trait and records which messages it provides, so the
/// dispatcher can answer `NOT_IMPLEMENTED` for the others before looking at their arguments.
///
/// ```ignore
/// xapi_idl::actions! {
///     impl VmActions for Daemon {
///         fn start(&self, ctx: &Ctx, vm: Ref<Vm>, paused: bool, force: bool) -> ApiResult<()> { .. }
///     }
/// }
/// ```
#[macro_export]
macro_rules! actions {
    (impl $tr:ident for $ty:ty { $( $(#[$attr:meta])* fn $name:ident ( $($args:tt)* ) -> $ret:ty $body:block )* }) => {
        impl $tr for $ty {
            fn implemented_messages(&self) -> &'static [&'static str] {
                &[$(stringify!($name)),*]
            }
            $( $(#[$attr])* fn $name($($args)*) -> $ret $body )*
        }
    };
}
