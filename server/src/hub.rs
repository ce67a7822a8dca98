//! The live connections, so a revocation can reach every connection of a
//! device at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use branchline_protocol::DeviceId;
use tokio_util::sync::CancellationToken;

/// Every authenticated connection, by connection id.
#[derive(Default)]
pub(crate) struct Hub {
    connections: Mutex<HashMap<u64, (DeviceId, CancellationToken)>>,
    next_id: AtomicU64,
}

impl Hub {
    /// A fresh connection id (also used before authentication, to tell a
    /// connection's own changes from others').
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

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
