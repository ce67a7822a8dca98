//! The live connections, so a revocation can reach every connection of a
//! device at once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use branchline_protocol::DeviceId;
use tokio_util::sync::CancellationToken;

/// Every authenticated connection, by the connection id the core gave it.
#[derive(Default)]
pub(crate) struct Hub {
    connections: Mutex<HashMap<u64, (DeviceId, CancellationToken)>>,
}

impl Hub {
    /// Registers connection `id` of `device`; the returned token is
    /// cancelled when the device is revoked.
    pub(crate) fn register(&self, id: u64, device: DeviceId) -> CancellationToken {
        let revoked = CancellationToken::new();
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, (device, revoked.clone()));
        revoked
    }

    /// Forgets connection `id`.
    pub(crate) fn unregister(&self, id: u64) {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Tells every connection of `device` that it was revoked; returns how
    /// many there were.
    pub(crate) fn revoke(&self, device: DeviceId) -> usize {
        let connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut count = 0;
        for (owner, revoked) in connections.values() {
            if *owner == device {
                revoked.cancel();
                count += 1;
            }
        }
        count
    }

    /// How many authenticated connections there are.
    pub(crate) fn len(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
