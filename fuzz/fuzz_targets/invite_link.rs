//! Invite links, which arrive from QR codes, chat messages and typing: any
//! text. Nothing panics; a link that parses prints as a link that parses
//! to the same server, code and fingerprint, and its server addresses are
//! within the limit.

#![no_main]

use branchline_protocol::InviteLink;
use branchline_protocol::invite::MAX_ADDRESSES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(link) = text.parse::<InviteLink>() else {
        return;
    };
    assert!(
        !link.code.is_empty(),
        "an invite link parsed without a code"
    );
    let addresses = link.addresses();
    assert!(
        !addresses.is_empty() && addresses.len() <= MAX_ADDRESSES,
        "an invite link parsed with {} addresses",
        addresses.len()
    );
    let printed = link.to_string();
    let again: InviteLink = printed
        .parse()
        .unwrap_or_else(|e| panic!("a printed link does not parse ({e}): {printed}"));
    assert!(again == link, "a link changed on its way back: {printed}");
});
