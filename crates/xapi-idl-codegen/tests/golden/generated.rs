// Generated from spec/datamodel.json by xapi-idl-codegen. Do not edit.

/// Marker types naming each class, for typed refs (`Ref<classes::Vm>`).
pub mod classes {
    /// The `session` class.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct Session;
    impl crate::Class for Session {
        const NAME: &'static str = "session";
        const INDEX: usize = 0;
    }
    /// The `VM_guest` class.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct VmGuest;
    impl crate::Class for VmGuest {
        const NAME: &'static str = "VM_guest";
        const INDEX: usize = 1;
    }
}

/// Every datamodel enum, spelled as on the wire by `as_str`.
pub mod enums {
    /// The `power` enum.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Power {
        /// `Halted`
        Halted,
        /// `balance-slb`
        BalanceSlb,
        /// `none`
        None,
    }
    impl Default for Power {
        fn default() -> Self { Self::Halted }
    }
    impl crate::WireEnum for Power {
        const NAME: &'static str = "power";
        const ALL: &'static [Self] = &[Self::Halted, Self::BalanceSlb, Self::None, ];
        fn as_str(self) -> &'static str {
            match self {
                Self::Halted => "Halted",
                Self::BalanceSlb => "balance-slb",
                Self::None => "none",
            }
        }
    }
}

/// One record struct per class, fields in datamodel order.
pub mod records {
    use crate::{FromValue, ToValue, Value};
    /// A `session` record.
    #[derive(Debug, Clone, PartialEq)]
    pub struct SessionRecord {
        /// `uuid`
        pub uuid: String,
    }
    impl Default for SessionRecord {
        fn default() -> Self {
            Self {
                uuid: Default::default(),
            }
        }
    }
    impl crate::Record for SessionRecord {
        type Class = crate::classes::Session;
        fn to_row(&self) -> Vec<Value> {
            vec![self.uuid.to_value(), ]
        }
        fn from_row(row: &[Value]) -> Result<Self, crate::ConvError> {
            let nil = Value::Nil;
            Ok(Self {
                uuid: FromValue::from_value(row.get(0).unwrap_or(&nil)).map_err(|e| e.at("uuid"))?,
            })
        }
    }
    impl ToValue for SessionRecord {
        fn to_value(&self) -> Value {
            Value::Struct(vec![
                ("uuid".to_owned(), self.uuid.to_value()),
            ])
        }
    }
    impl FromValue for SessionRecord {
        fn from_value(v: &Value) -> Result<Self, crate::ConvError> {
            let Value::Struct(members) = v else { return Err(crate::ConvError::expected("struct", v)); };
            let mut rec = Self::default();
            for (k, v) in members {
                match k.as_str() {
                    "uuid" => rec.uuid = FromValue::from_value(v).map_err(|e| e.at("uuid"))?,
                    _ => {}
                }
            }
            Ok(rec)
        }
    }
    /// A `VM_guest` record.
    #[derive(Debug, Clone, PartialEq)]
    pub struct VmGuestRecord {
        /// `uuid`
        pub uuid: String,
        /// `name_label`
        pub name_label: String,
        /// `power_state`
        pub power_state: crate::enums::Power,
        /// `type`
        pub type_: std::collections::BTreeMap<String, i64>,
        /// `peers`
        pub peers: Vec<crate::Ref<crate::classes::VmGuest>>,
    }
    impl Default for VmGuestRecord {
        fn default() -> Self {
            Self {
                uuid: Default::default(),
                name_label: String::from("untitled"),
                power_state: crate::enums::Power::Halted,
                type_: std::collections::BTreeMap::from([(String::from("a"), 1i64)]),
                peers: Default::default(),
            }
        }
    }
    impl crate::Record for VmGuestRecord {
        type Class = crate::classes::VmGuest;
        fn to_row(&self) -> Vec<Value> {
            vec![self.uuid.to_value(), self.name_label.to_value(), self.power_state.to_value(), self.type_.to_value(), self.peers.to_value(), ]
        }
        fn from_row(row: &[Value]) -> Result<Self, crate::ConvError> {
            let nil = Value::Nil;
            Ok(Self {
                uuid: FromValue::from_value(row.get(0).unwrap_or(&nil)).map_err(|e| e.at("uuid"))?,
                name_label: FromValue::from_value(row.get(1).unwrap_or(&nil)).map_err(|e| e.at("name_label"))?,
                power_state: FromValue::from_value(row.get(2).unwrap_or(&nil)).map_err(|e| e.at("power_state"))?,
                type_: FromValue::from_value(row.get(3).unwrap_or(&nil)).map_err(|e| e.at("type"))?,
                peers: FromValue::from_value(row.get(4).unwrap_or(&nil)).map_err(|e| e.at("peers"))?,
            })
        }
    }
    impl ToValue for VmGuestRecord {
        fn to_value(&self) -> Value {
            Value::Struct(vec![
                ("uuid".to_owned(), self.uuid.to_value()),
                ("name_label".to_owned(), self.name_label.to_value()),
                ("power_state".to_owned(), self.power_state.to_value()),
                ("type".to_owned(), self.type_.to_value()),
                ("peers".to_owned(), self.peers.to_value()),
            ])
        }
    }
    impl FromValue for VmGuestRecord {
        fn from_value(v: &Value) -> Result<Self, crate::ConvError> {
            let Value::Struct(members) = v else { return Err(crate::ConvError::expected("struct", v)); };
            let mut rec = Self::default();
            for (k, v) in members {
                match k.as_str() {
                    "uuid" => rec.uuid = FromValue::from_value(v).map_err(|e| e.at("uuid"))?,
                    "name_label" => rec.name_label = FromValue::from_value(v).map_err(|e| e.at("name_label"))?,
                    "power_state" => rec.power_state = FromValue::from_value(v).map_err(|e| e.at("power_state"))?,
                    "type" => rec.type_ = FromValue::from_value(v).map_err(|e| e.at("type"))?,
                    "peers" => rec.peers = FromValue::from_value(v).map_err(|e| e.at("peers"))?,
                    _ => {}
                }
            }
            Ok(rec)
        }
    }
}

/// Error codes and their constructors, arity as documented.
pub mod errors {
    use crate::ApiError;
    /// `HANDLE_INVALID`
    pub const HANDLE_INVALID: &str = "HANDLE_INVALID";
    /// `HANDLE_INVALID` with parameters ["class", "handle"].
    pub fn handle_invalid(class: impl std::fmt::Display, handle: impl std::fmt::Display) -> ApiError {
        ApiError::new(HANDLE_INVALID, vec![class.to_string(), handle.to_string()])
    }
    /// `NOT_IMPLEMENTED`
    pub const NOT_IMPLEMENTED: &str = "NOT_IMPLEMENTED";
    /// `NOT_IMPLEMENTED` with parameters ["function"].
    pub fn not_implemented(function: impl std::fmt::Display) -> ApiError {
        ApiError::new(NOT_IMPLEMENTED, vec![function.to_string()])
    }
    /// `SESSION_AUTHENTICATION_FAILED`
    pub const SESSION_AUTHENTICATION_FAILED: &str = "SESSION_AUTHENTICATION_FAILED";
    /// `SESSION_AUTHENTICATION_FAILED`; upstream does not document its parameters.
    pub fn session_authentication_failed(params: Vec<String>) -> ApiError {
        ApiError::new(SESSION_AUTHENTICATION_FAILED, params)
    }
}

/// One trait per class holding its explicit messages; unwritten ones answer `NOT_IMPLEMENTED`.
pub mod actions {
    use crate::{ActionsBase, ApiResult, FromValue, ToValue, Value};
    /// Explicit messages of `session`.
    pub trait SessionActions: ActionsBase {
        /// Wire names (without the class) of the messages this implementation provides.
        fn implemented_messages(&self) -> &'static [&'static str] { &[] }
        /// `session.login_with_password`
        fn login_with_password(&self, ctx: &Self::Ctx, uname: String, pwd: String) -> ApiResult<crate::Ref<crate::classes::Session>> {
            Err(crate::errors::not_implemented("session.login_with_password"))
        }
    }
    /// Explicit messages of `VM_guest`.
    pub trait VmGuestActions: ActionsBase {
        /// Wire names (without the class) of the messages this implementation provides.
        fn implemented_messages(&self) -> &'static [&'static str] { &[] }
        /// `VM_guest.move`
        fn r#move(&self, ctx: &Self::Ctx, self_: crate::Ref<crate::classes::VmGuest>, to: crate::enums::Power) -> ApiResult<()> {
            Err(crate::errors::not_implemented("VM_guest.move"))
        }
    }
    /// Everything the daemon implements: one actions trait per class.
    pub trait AllActions: SessionActions + VmGuestActions {}
    impl<T: SessionActions + VmGuestActions> AllActions for T {}

    /// Whether `class_index`'s implementation provides message `name`.
    pub fn is_implemented<D: AllActions + ?Sized>(d: &D, class_index: usize, name: &str) -> bool {
        match class_index {
            0 => <D as SessionActions>::implemented_messages(d).contains(&name),
            1 => <D as VmGuestActions>::implemented_messages(d).contains(&name),
            _ => false,
        }
    }

    /// Runs explicit message number `index` with its arguments (session already removed).
    pub fn dispatch_explicit<D: AllActions + ?Sized>(d: &D, ctx: &D::Ctx, index: usize, args: Vec<Value>) -> ApiResult<Value> {
        let mut args = crate::Args::new(args);
        match index {
            0 => { let uname: String = args.take("uname")?; let pwd: String = args.take("pwd")?; let r = <D as SessionActions>::login_with_password(d, ctx, uname, pwd)?; Ok(r.to_value()) }
            1 => { let self_: crate::Ref<crate::classes::VmGuest> = args.take("self")?; let to: crate::enums::Power = args.take("to")?; let r = <D as VmGuestActions>::r#move(d, ctx, self_, to)?; Ok(r.to_value()) }
            _ => Err(crate::ApiError::internal("unknown explicit message index")),
        }
    }
}
