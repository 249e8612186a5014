//! The simulated domain image written by `suspend` and `migrate_send` and read back by
//! `resume` and `migrate_receive`: a magic line and the guest's state as JSON.
//!
//! It carries what a real image carries that the build description does not: memory held,
//! vCPUs online and what the guest had published in xenstore.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::table::SimDomain;
use crate::domain::{DomainConfig, DomainType};
use crate::error::{Result, XenopsError};

const MAGIC: &[u8] = b"XENOPS-SIM-IMAGE 1\n";

/// A saved guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The VM it belongs to.
    pub uuid: Uuid,
    /// The domain type it ran as.
    pub domain_type: DomainType,
    /// Memory the guest held, bytes.
    pub memory_actual: u64,
    /// The balloon target, bytes.
    pub memory_target: u64,
    /// vCPUs online.
    pub vcpus_online: u32,
    /// The guest-written xenstore nodes (`data/`, `attr/`, `control/feature-*`).
    pub guest_data: BTreeMap<String, String>,
}

impl Image {
    /// Capture a domain.
    pub fn of(domain: &SimDomain, guest_data: BTreeMap<String, String>) -> Self {
        Image {
            uuid: domain.config.uuid,
            domain_type: domain.config.domain_type,
            memory_actual: domain.memory_actual,
            memory_target: domain.memory_target,
            vcpus_online: domain.vcpus_online,
            guest_data,
        }
    }

    /// The bytes of the image.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = MAGIC.to_vec();
        serde_json::to_writer(&mut bytes, self)
            .map_err(|e| XenopsError::InvalidImage(format!("cannot encode image: {e}")))?;
        Ok(bytes)
    }

    /// Read an image and check that it can be restored with `config`.
    pub fn from_bytes(bytes: &[u8], config: &DomainConfig) -> Result<Self> {
        let body = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| XenopsError::InvalidImage("not a simulated domain image".into()))?;
        let image: Image = serde_json::from_slice(body)
            .map_err(|e| XenopsError::InvalidImage(format!("corrupt image: {e}")))?;
        if image.uuid != config.uuid {
            return Err(XenopsError::InvalidImage(format!(
                "image of vm {} cannot restore vm {}",
                image.uuid, config.uuid
            )));
        }
        if image.domain_type != config.domain_type {
            return Err(XenopsError::InvalidImage(format!(
                "image of a {:?} domain cannot restore a {:?} one",
                image.domain_type, config.domain_type
            )));
        }
        if image.vcpus_online == 0 || image.vcpus_online > config.vcpus.max {
            return Err(XenopsError::InvalidImage(format!(
                "image has {} vcpus online, the vm allows {}",
                image.vcpus_online, config.vcpus.max
            )));
        }
        if image.memory_actual > config.memory.static_max {
            return Err(XenopsError::InvalidImage(format!(
                "image holds {} bytes, above static_max {}",
                image.memory_actual, config.memory.static_max
            )));
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_for(config: &DomainConfig) -> Image {
        Image {
            uuid: config.uuid,
            domain_type: config.domain_type,
            memory_actual: config.memory.target,
            memory_target: config.memory.target,
            vcpus_online: 1,
            guest_data: BTreeMap::from([("data/os_version/name".into(), "x".into())]),
        }
    }

    #[test]
    fn an_image_round_trips() {
        let config = DomainConfig::new_pv(Uuid::new_v4(), "t", 1 << 30);
        let image = image_for(&config);
        assert_eq!(
            Image::from_bytes(&image.to_bytes().unwrap(), &config).unwrap(),
            image
        );
    }

    #[test]
    fn an_image_of_another_vm_or_garbage_is_refused() {
        let config = DomainConfig::new_pv(Uuid::new_v4(), "t", 1 << 30);
        let other = DomainConfig::new_pv(Uuid::new_v4(), "u", 1 << 30);
        let bytes = image_for(&config).to_bytes().unwrap();
        assert!(matches!(
            Image::from_bytes(&bytes, &other),
            Err(XenopsError::InvalidImage(_))
        ));
        assert!(matches!(
            Image::from_bytes(b"junk", &config),
            Err(XenopsError::InvalidImage(_))
        ));
        let truncated = &bytes[..bytes.len() - 3];
        assert!(matches!(
            Image::from_bytes(truncated, &config),
            Err(XenopsError::InvalidImage(_))
        ));
    }
}
