//! Whole documents, compressed together: the body of [`Message::Documents`].
//!
//! A device's first sync receives every document of its branch. The automerge sync
//! protocol would send each as its changes, which are bigger than the document's saved
//! form (about 1.2 × over a generated two-year branch) and make the device apply
//! them one by one. For a document the device holds nothing of, the server instead
//! sends the document as it stores it (automerge's saved form, plus any change
//! chunks appended since, which `load` accepts concatenated), and bundles many
//! documents into one deflate stream: the documents of a branch share actor ids, keys
//! and phrasing, so compressing them together takes the bundle to about 0.6 × the
//! sum of their saved sizes.
//!
//! The body, before compression, is the documents in [postcard] form: a varint count,
//! then per document its 16-byte id and its bytes as a byte string. Unpacking refuses
//! more than [`MAX_UNPACKED_LEN`] bytes, so a bundle cannot make the device inflate
//! without limit.
//!
//! [`Message::Documents`]: crate::Message::Documents

use std::io::Read as _;

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use serde::{Deserialize, Serialize};

use crate::DocId;
use crate::message::byte_string;

/// The most documents one [`Message::GetDocuments`](crate::Message::GetDocuments)
/// may ask for; a device asks for more in several requests.
pub const MAX_DOCS_PER_REQUEST: usize = 1024;

/// How many bytes of documents a server puts in one bundle before it starts the
/// next (a single larger document gets a bundle of its own).
///
/// A bundle is what a first sync keeps when the link drops: the device stores each
/// one as it arrives, and a bundle cut off mid-way is asked for again. 64 KiB of
/// documents deflate to about 40 KB, under ten seconds on GPRS, while compressing
/// nearly as well as larger bundles (0.64 × the saved size on the generated branch,
/// against 0.61 at 256 KiB).
pub const TARGET_UNPACKED_LEN: usize = 64 * 1024;

/// The most bytes a bundle may unpack to.
pub const MAX_UNPACKED_LEN: usize = 64 * 1024 * 1024;

/// One document of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SavedDocument {
    /// The document.
    pub doc_id: DocId,
    /// Its bytes, for `Automerge::load`.
    #[serde(deserialize_with = "byte_string::deserialize")]
    pub data: Vec<u8>,
}

#[derive(Serialize)]
struct Borrowed<'a> {
    doc_id: DocId,
    #[serde(serialize_with = "byte_string::serialize")]
    data: &'a [u8],
}

/// Why a bundle could not be unpacked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleError {
    /// The deflate stream is broken.
    #[error("the bundle does not inflate: {0}")]
    Inflate(String),
    /// It inflates to more than [`MAX_UNPACKED_LEN`].
    #[error("the bundle inflates to more than {MAX_UNPACKED_LEN} bytes")]
    TooLarge,
    /// The inflated bytes are not a list of documents.
    #[error("the bundle's contents do not decode: {0}")]
    Malformed(String),
}

/// Packs documents into one compressed bundle.
pub fn pack<'a>(docs: impl IntoIterator<Item = (DocId, &'a [u8])>) -> Vec<u8> {
    let docs: Vec<Borrowed<'_>> = docs
        .into_iter()
        .map(|(doc_id, data)| Borrowed { doc_id, data })
        .collect();
    let encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    // Writing into memory cannot fail, and every field serialises infallibly.
    let encoder = postcard::to_io(&docs, encoder).expect("packing into memory cannot fail");
    encoder.finish().expect("deflating into memory cannot fail")
}

/// Unpacks a bundle made by [`pack`].
pub fn unpack(bundle: &[u8]) -> Result<Vec<SavedDocument>, BundleError> {
    let mut inflated = Vec::new();
    DeflateDecoder::new(bundle)
        .take(MAX_UNPACKED_LEN as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| BundleError::Inflate(e.to_string()))?;
    if inflated.len() > MAX_UNPACKED_LEN {
        return Err(BundleError::TooLarge);
    }
    match postcard::take_from_bytes::<Vec<SavedDocument>>(&inflated) {
        Ok((docs, [])) => Ok(docs),
        Ok((_, rest)) => Err(BundleError::Malformed(format!(
            "{} bytes after the last document",
            rest.len()
        ))),
        Err(e) => Err(BundleError::Malformed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use std::io::Write as _;

    use super::*;

    /// `data` as a deflate stream: a bundle that is not one.
    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn id(n: u8) -> DocId {
        DocId::from_bytes([n; 16])
    }

    proptest! {
        #[test]
        fn what_is_packed_unpacks(docs in prop::collection::vec(
            (any::<[u8; 16]>(), prop::collection::vec(any::<u8>(), 0..300)),
            0..20,
        )) {
            let bundle = pack(docs.iter().map(|(id, data)| (DocId::from_bytes(*id), data.as_slice())));
            let back = unpack(&bundle).unwrap();
            prop_assert_eq!(back.len(), docs.len());
            for (got, (id, data)) in back.iter().zip(&docs) {
                prop_assert_eq!(got.doc_id, DocId::from_bytes(*id));
                prop_assert_eq!(&got.data, data);
            }
        }

        #[test]
        fn any_bytes_unpack_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = unpack(&bytes);
            let _ = unpack(&deflate(&bytes));
        }
    }

    #[test]
    fn the_layout_is_postcard_under_deflate() {
        let bundle = pack([(id(1), &b"ab"[..]), (id(2), &b""[..])]);
        let mut inflated = Vec::new();
        DeflateDecoder::new(bundle.as_slice())
            .read_to_end(&mut inflated)
            .unwrap();
        let mut expected = vec![2];
        expected.extend([1; 16]);
        expected.extend([2, b'a', b'b']);
        expected.extend([2; 16]);
        expected.push(0);
        assert_eq!(inflated, expected);
    }

    #[test]
    fn bad_bundles_are_refused_with_a_reason() {
        assert!(matches!(
            unpack(b"not deflate"),
            Err(BundleError::Inflate(_))
        ));
        assert!(matches!(
            unpack(&deflate(&[5, 1, 2])),
            Err(BundleError::Malformed(_))
        ));
        let mut trailing = vec![0];
        trailing.push(9);
        assert!(matches!(
            unpack(&deflate(&trailing)),
            Err(BundleError::Malformed(_))
        ));
        // A bomb: 65 MiB of zeros deflates to about 64 KiB.
        let bomb = deflate(&vec![0; MAX_UNPACKED_LEN + 1024]);
        assert!(bomb.len() < 1024 * 1024);
        assert_eq!(unpack(&bomb), Err(BundleError::TooLarge));
    }
}
