//! The bundle decoder a device runs on every `Documents` answer: deflated
//! postcard of `(id, bytes)` pairs. Nothing panics, however the deflate
//! stream or the pairs inside it are damaged; what unpacks stays under the
//! unpacked limit and packs back to a bundle that unpacks the same.

#![no_main]

use branchline_protocol::bundle::{MAX_UNPACKED_LEN, pack, unpack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(docs) = unpack(data) else {
        return;
    };
    let total: usize = docs.iter().map(|d| d.data.len()).sum();
    assert!(
        total <= MAX_UNPACKED_LEN,
        "a bundle unpacked past its limit"
    );
    let again = pack(docs.iter().map(|d| (d.doc_id, d.data.as_slice())));
    assert_eq!(
        unpack(&again).expect("a packed bundle unpacks"),
        docs,
        "documents changed on their way back through a bundle"
    );
});
