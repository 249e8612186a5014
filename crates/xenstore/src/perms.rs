//! Node permissions as typed values and their wire form (`GET_PERMS`/`SET_PERMS`):
//! strings such as `"n0"`, `"r1"`, `"w2"`, `"b3"`. The first entry names the owner
//! and the access of every domain not listed; the rest form the ACL. Pure.

use std::fmt;
use std::str::FromStr;

use crate::error::{Result, XsError};
use crate::wire;

/// A domain id (`domid_t`).
pub type DomId = u16;

/// One access level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read only.
    Read,
    /// `w`: write only.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    fn from_letter(letter: char) -> Option<Access> {
        Some(match letter {
            'n' => Access::None,
            'r' => Access::Read,
            'w' => Access::Write,
            'b' => Access::Both,
            _ => return None,
        })
    }
}

/// One wire permission entry: an access letter followed by a decimal domid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// What the domain may do.
    pub access: Access,
    /// The domain concerned.
    pub domid: DomId,
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

impl FromStr for Perm {
    type Err = XsError;

    fn from_str(text: &str) -> Result<Perm> {
        let bad = || XsError::Protocol(format!("bad permission entry {text:?}"));
        let mut chars = text.chars();
        let access = chars.next().and_then(Access::from_letter).ok_or_else(bad)?;
        let domid = chars.as_str().parse::<DomId>().map_err(|_| bad())?;
        Ok(Perm { access, domid })
    }
}

/// The permissions of a node: its owner (who always has full access), the access
/// of domains not in the ACL, and the ACL itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Permissions {
    /// The owning domain.
    pub owner: DomId,
    /// Access for every domain not listed in `acl`.
    pub others: Access,
    /// Per-domain exceptions.
    pub acl: Vec<Perm>,
}

impl Permissions {
    /// Permissions owned by `owner` with `others` for everyone else and no ACL.
    pub fn new(owner: DomId, others: Access) -> Permissions {
        Permissions {
            owner,
            others,
            acl: Vec::new(),
        }
    }

    /// Adds an ACL entry.
    pub fn with(mut self, domid: DomId, access: Access) -> Permissions {
        self.acl.push(Perm { access, domid });
        self
    }

    /// The wire entries, owner first.
    pub fn to_entries(&self) -> Vec<Perm> {
        let mut entries = Vec::with_capacity(1 + self.acl.len());
        entries.push(Perm {
            access: self.others,
            domid: self.owner,
        });
        entries.extend(self.acl.iter().copied());
        entries
    }

    /// Parses a `GET_PERMS` reply payload.
    pub fn from_payload(payload: &[u8]) -> Result<Permissions> {
        let mut entries = wire::split_nul_strings(payload)?
            .iter()
            .map(|entry| entry.parse::<Perm>())
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let first = entries
            .next()
            .ok_or_else(|| XsError::Protocol("empty permission list".into()))?;
        Ok(Permissions {
            owner: first.domid,
            others: first.access,
            acl: entries.collect(),
        })
    }

    /// Appends the entries, each NUL-terminated, as `SET_PERMS` expects after the path.
    pub fn write_payload(&self, out: &mut Vec<u8>) -> Result<()> {
        for entry in self.to_entries() {
            wire::push_nul_string(out, &entry.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn entries_render_as_letter_and_domid() {
        let perms = Permissions::new(0, Access::None)
            .with(1, Access::Read)
            .with(2, Access::Both)
            .with(3, Access::Write);
        let mut out = Vec::new();
        perms.write_payload(&mut out).unwrap();
        assert_eq!(out, b"n0\0r1\0b2\0w3\0");
    }

    #[test]
    fn reply_parses_owner_first() {
        let perms = Permissions::from_payload(b"b7\0r5\0").unwrap();
        assert_eq!(perms.owner, 7);
        assert_eq!(perms.others, Access::Both);
        assert_eq!(
            perms.acl,
            vec![Perm {
                access: Access::Read,
                domid: 5
            }]
        );
    }

    #[test]
    fn wire_form_round_trips() {
        let perms = Permissions::new(3, Access::Read).with(0, Access::Both);
        let mut out = Vec::new();
        perms.write_payload(&mut out).unwrap();
        assert_eq!(Permissions::from_payload(&out).unwrap(), perms);
    }

    #[test]
    fn malformed_entries_are_protocol_errors() {
        for bad in [&b"x0\0"[..], b"r\0", b"r-1\0", b"r70000\0", b""] {
            assert!(
                matches!(Permissions::from_payload(bad), Err(XsError::Protocol(_))),
                "{bad:?} should be rejected"
            );
        }
    }
}
