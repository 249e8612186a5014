//! Parent locators: platform codes, encoding and decoding of locator data the way blktap's
//! vhd-util writes it (`MacX` as a UTF-8 `file://` URL, `W2ku`/`W2ru` as UTF-16LE Windows-style
//! paths), and computing the relative path from a child to its parent. Never does I/O.

use std::path::{Component, Path, PathBuf};

use crate::error::{Result, VhdError};

/// Minimum space reserved for each locator when we create a disk, so `relink` to a somewhat
/// longer path still fits without moving data blocks.
pub const MIN_LOCATOR_SPACE: u64 = 2048;

/// A `Platform Code` of a parent locator entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformCode {
    /// Unused entry.
    None,
    /// `Wi2r`: deprecated Windows relative path.
    Wi2r,
    /// `Wi2k`: deprecated Windows absolute path.
    Wi2k,
    /// `W2ru`: Windows relative path, UTF-16LE.
    W2ru,
    /// `W2ku`: Windows absolute path, UTF-16LE.
    W2ku,
    /// `Mac `: a Mac OS alias blob.
    Mac,
    /// `MacX`: a file URL, UTF-8.
    MacX,
    /// Anything else.
    Unknown(u32),
}

impl PlatformCode {
    /// Decodes the on-disk value.
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => Self::None,
            0x5769_3272 => Self::Wi2r,
            0x5769_326b => Self::Wi2k,
            0x5732_7275 => Self::W2ru,
            0x5732_6b75 => Self::W2ku,
            0x4d61_6320 => Self::Mac,
            0x4d61_6358 => Self::MacX,
            other => Self::Unknown(other),
        }
    }

    /// The on-disk value.
    pub fn code(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Wi2r => 0x5769_3272,
            Self::Wi2k => 0x5769_326b,
            Self::W2ru => 0x5732_7275,
            Self::W2ku => 0x5732_6b75,
            Self::Mac => 0x4d61_6320,
            Self::MacX => 0x4d61_6358,
            Self::Unknown(other) => other,
        }
    }

    /// Whether this crate can encode and decode the code.
    pub fn is_supported(self) -> bool {
        matches!(self, Self::W2ru | Self::W2ku | Self::MacX)
    }
}

/// Where a differencing disk's parent lives, as recorded in the child's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentLink {
    /// The parent's footer uuid.
    pub uuid: uuid::Uuid,
    /// The parent's modification time as a VHD timestamp.
    pub timestamp: u32,
    /// The parent's file name (no directory), stored as the `Parent Unicode Name`.
    pub name: String,
    /// Path relative to the child's directory, `/`-separated (`parent.vhd`, `../a/p.vhd`).
    pub relative: String,
    /// Absolute path, `/`-separated.
    pub absolute: String,
}

/// Encodes `path` (`/`-separated) as the locator data for `code`.
///
/// `MacX` becomes `file://./rel` (or `file:///abs`); `W2ru` becomes `.\rel` and `W2ku` the
/// absolute path with backslashes, both UTF-16LE, as blktap writes them.
pub fn encode(code: PlatformCode, path: &str) -> Result<Vec<u8>> {
    if path.is_empty() || path.contains('\0') {
        return Err(VhdError::InvalidPath(path.to_owned()));
    }
    match code {
        PlatformCode::MacX => Ok(format!("file://{}", dotted(path)).into_bytes()),
        PlatformCode::W2ru | PlatformCode::W2ku => {
            let windows = dotted(path).replace('/', "\\");
            Ok(windows
                .encode_utf16()
                .flat_map(|unit| unit.to_le_bytes())
                .collect())
        }
        _ => Err(VhdError::Unsupported {
            what: "parent locator platform code",
            value: u64::from(code.code()),
        }),
    }
}

/// Relative paths get a leading `./` so every locator names a directory explicitly, as blktap
/// (and Microsoft, which requires `.\` for relative paths) do.
fn dotted(path: &str) -> String {
    if path.starts_with('/') || path.starts_with("./") || path.starts_with("../") {
        path.to_owned()
    } else {
        format!("./{path}")
    }
}

/// Decodes locator data into a `/`-separated path, or `None` if it is not valid for `code`.
pub fn decode(code: PlatformCode, data: &[u8]) -> Option<String> {
    let text = match code {
        PlatformCode::MacX => {
            let text = std::str::from_utf8(data).ok()?;
            text.trim_end_matches('\0')
                .strip_prefix("file://")?
                .to_owned()
        }
        PlatformCode::W2ru | PlatformCode::W2ku => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .take_while(|unit| *unit != 0)
                .collect();
            let text = String::from_utf16(&units).ok()?.replace('\\', "/");
            // Windows writers put a drive letter in front of absolute paths.
            match text.get(..2) {
                Some("C:") | Some("c:") => text[2..].to_owned(),
                _ => text,
            }
        }
        _ => return None,
    };
    if text.is_empty() {
        None
    } else {
        Some(text)
    }
}

/// Builds the `/`-separated path of `target` relative to directory `from_dir`; both must be
/// absolute and normalised (no `.` or `..` components).
pub fn relative_path(from_dir: &Path, target: &Path) -> Result<String> {
    let from: Vec<Component<'_>> = from_dir.components().collect();
    let to: Vec<Component<'_>> = target.components().collect();
    if !from_dir.is_absolute() || !target.is_absolute() {
        return Err(VhdError::InvalidPath(target.display().to_string()));
    }
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for component in &to[common..] {
        rel.push(component.as_os_str());
    }
    rel.to_str()
        .map(str::to_owned)
        .ok_or_else(|| VhdError::InvalidPath(target.display().to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn macx_is_a_utf8_file_url_with_dot_prefix() {
        assert_eq!(
            encode(PlatformCode::MacX, "parent.vhd").unwrap(),
            b"file://./parent.vhd"
        );
        assert_eq!(
            decode(PlatformCode::MacX, b"file://./parent.vhd").as_deref(),
            Some("./parent.vhd")
        );
    }

    #[test]
    fn w2ru_is_utf16le_with_backslashes() {
        let data = encode(PlatformCode::W2ru, "sub/p.vhd").unwrap();
        let expected: Vec<u8> = ".\\sub\\p.vhd"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(data, expected);
        assert_eq!(
            decode(PlatformCode::W2ru, &data).as_deref(),
            Some("./sub/p.vhd")
        );
    }

    #[test]
    fn w2ku_absolute_round_trips_and_drive_letter_is_dropped() {
        let data = encode(PlatformCode::W2ku, "/srv/sr/p.vhd").unwrap();
        assert_eq!(
            decode(PlatformCode::W2ku, &data).as_deref(),
            Some("/srv/sr/p.vhd")
        );
        let windows: Vec<u8> = "C:\\x\\p.vhd"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(
            decode(PlatformCode::W2ku, &windows).as_deref(),
            Some("/x/p.vhd")
        );
    }

    #[test]
    fn garbage_does_not_decode() {
        assert_eq!(decode(PlatformCode::MacX, b"http://x"), None);
        assert_eq!(decode(PlatformCode::W2ku, &[0x41]), None);
        assert_eq!(decode(PlatformCode::Mac, b"file://x"), None);
        assert!(encode(PlatformCode::Mac, "x").is_err());
    }

    #[test]
    fn relative_path_walks_up_and_down() {
        let rel = relative_path(Path::new("/sr/a"), Path::new("/sr/b/p.vhd")).unwrap();
        assert_eq!(rel, "../b/p.vhd");
        let rel = relative_path(Path::new("/sr"), Path::new("/sr/p.vhd")).unwrap();
        assert_eq!(rel, "p.vhd");
    }

    #[test]
    fn platform_codes_round_trip() {
        for code in [0x5732_7275, 0x5732_6b75, 0x4d61_6358, 0x1234] {
            assert_eq!(PlatformCode::from_code(code).code(), code);
        }
        assert_eq!(PlatformCode::from_code(0x5732_6b75), PlatformCode::W2ku);
    }
}
