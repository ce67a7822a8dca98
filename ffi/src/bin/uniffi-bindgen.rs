//! `uniffi-bindgen`, built from the workspace so the generator always matches the
//! UniFFI version the library was built with. See `ffi/README.md` and
//! `scripts/bindings.sh`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
