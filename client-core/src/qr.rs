//! Links as QR codes: the invite and the branch's public submission code are
//! meant to be scanned from a poster, a screen or a terminal.

use qrcode::QrCode;
use qrcode::render::{svg, unicode::Dense1x2};

use crate::error::{Error, Result};

fn encode(text: &str) -> Result<QrCode> {
    QrCode::new(text.as_bytes()).map_err(|e| {
        Error::invalid(
            "qr code",
            format!("cannot encode {} bytes: {e}", text.len()),
        )
    })
}

/// `text` drawn with Unicode half blocks, two modules per character cell,
/// light on dark as a terminal shows it, ending with a newline.
pub fn terminal(text: &str) -> Result<String> {
    let mut image = encode(text)?
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    image.push('\n');
    Ok(image)
}

/// `text` as a standalone SVG image (black on white, with its quiet zone),
/// for an app to show or print.
pub fn svg(text: &str) -> Result<String> {
    Ok(encode(text)?
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_draws_and_too_much_text_is_refused() {
        let link = "branchline://example.org:4433/P-K7QX-M2PA-9RTD-H4WE?cert=00";
        let drawn = terminal(link).unwrap();
        assert!(drawn.lines().count() > 10 && drawn.contains('█'));
        let image = svg(link).unwrap();
        assert!(image.starts_with("<?xml") && image.contains("<svg"));
        let too_long = "x".repeat(8_000);
        assert_eq!(terminal(&too_long).unwrap_err().code(), "input.invalid");
        assert_eq!(svg(&too_long).unwrap_err().code(), "input.invalid");
    }
}
