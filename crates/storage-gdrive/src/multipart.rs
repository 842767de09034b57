//! The body of a multipart upload: `multipart/related` (RFC 2387), a JSON
//! metadata part and then the media part
//! (<https://developers.google.com/workspace/drive/api/guides/manage-uploads#multipart>).

use bytes::{BufMut as _, Bytes, BytesMut};

/// A boundary that occurs nowhere in `media`, and the whole body.
///
/// RFC 2046 §5.1.1: the boundary must not appear inside an encapsulated part.
/// The first candidate fits almost every document; one that holds it (by
/// chance or on purpose) gets the next.
pub(crate) fn multipart_related(metadata: &str, media_type: &mime::Mime, media: &[u8]) -> (String, Bytes) {
    let boundary = (0u64..)
        .map(|n| format!("storage-gdrive-{n:016x}"))
        .find(|b| memchr::memmem::find(media, b.as_bytes()).is_none())
        .unwrap_or_default();
    let mut body = BytesMut::with_capacity(media.len() + metadata.len() + 4 * boundary.len() + 128);
    body.put_slice(format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n").as_bytes());
    body.put_slice(metadata.as_bytes());
    body.put_slice(format!("\r\n--{boundary}\r\nContent-Type: {media_type}\r\n\r\n").as_bytes());
    body.put_slice(media);
    body.put_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdf() -> mime::Mime {
        "application/pdf".parse().unwrap_or(mime::APPLICATION_OCTET_STREAM)
    }

    #[test]
    fn the_body_is_metadata_then_media_between_boundaries() {
        let (b, body) = multipart_related(r#"{"name":"a"}"#, &pdf(), b"%PDF-1.7");
        let want = format!(
            "--{b}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{{\"name\":\"a\"}}\r\n--{b}\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\r\n--{b}--\r\n"
        );
        assert_eq!(body, Bytes::from(want));
    }

    #[test]
    fn a_document_holding_the_boundary_gets_another() {
        let (first, _) = multipart_related("{}", &pdf(), b"x");
        let media = format!("--{first}\r\n");
        let (b, body) = multipart_related("{}", &pdf(), media.as_bytes());
        assert_ne!(b, first);
        assert!(memchr::memmem::find(media.as_bytes(), b.as_bytes()).is_none());
        assert_eq!(memchr::memmem::find_iter(&body, format!("--{b}").as_bytes()).count(), 3);
    }
}
