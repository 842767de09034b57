//! A `multipart/related` body parser (RFC 2387 over RFC 2046 §5.1.1 syntax), as Drive's
//! `uploadType=multipart` takes: metadata part first, media part second
//! (<https://developers.google.com/drive/api/guides/manage-uploads#multipart>).
//!
//! Tolerates what google-drive3 7.0.0 sends (google-apis-common 8.0.0 `src/lib.rs`,
//! `MultiPartReader`): a CRLF preamble before the first delimiter, lower-case part header
//! names, a per-part `content-length`, and no space after `;` in the top-level content type.

use bytes::Bytes;

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Part {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Extracts the `boundary` parameter of a `multipart/related` content type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let media = parts.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/related") {
        return None;
    }
    parts
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| v.trim().trim_matches('"').to_owned())
        })
        .filter(|b| !b.is_empty())
}

/// Where `needle` first occurs at or after `from`. memchr's searcher keeps a
/// 20 MiB body's parse in milliseconds: a byte-by-byte scan took 0.7 s in a
/// dev build, enough to trip a client's idle timeout before the answer.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(haystack.get(from..)?, needle).map(|i| from + i)
}

/// Splits a body into parts; `None` when it is not well-formed.
pub(crate) fn parse(body: &Bytes, boundary: &str) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut pos = find(body, delimiter, 0)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        // After a delimiter: `--` closes, CRLF starts a part.
        if body.get(pos..pos + 2) == Some(b"--") {
            return Some(parts);
        }
        pos = skip_line_break(body, pos)?;
        let header_end = find(body, b"\r\n\r\n", pos)
            .map(|i| (i, 4))
            .or_else(|| find(body, b"\n\n", pos).map(|i| (i, 2)));
        // A part with no headers starts directly with the blank line.
        let (headers, body_start) = if body.get(pos..pos + 2) == Some(b"\r\n") {
            (Vec::new(), pos + 2)
        } else {
            let (end, len) = header_end?;
            let text = std::str::from_utf8(&body[pos..end]).ok()?;
            let headers = text
                .lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                })
                .collect();
            (headers, end + len)
        };
        let mut close = Vec::with_capacity(delimiter.len() + 2);
        close.extend_from_slice(b"\r\n");
        close.extend_from_slice(delimiter);
        let body_end = find(body, &close, body_start)?;
        parts.push(Part {
            headers,
            body: body.slice(body_start..body_end),
        });
        pos = body_end + close.len();
    }
}

fn skip_line_break(body: &[u8], pos: usize) -> Option<usize> {
    // Transport padding (spaces/tabs) may precede the line break (RFC 2046 §5.1.1).
    let mut i = pos;
    while matches!(body.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match body.get(i..i + 2) {
        Some(b"\r\n") => Some(i + 2),
        _ if body.get(i) == Some(&b'\n') => Some(i + 1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_google_drive3_body() {
        let body = Bytes::from_static(
            b"\r\n--B\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{\"name\":\"a b\"}\r\n--B\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n\r\nhello world\r\n--B--\r\n",
        );
        assert_eq!(boundary("multipart/related;boundary=B").as_deref(), Some("B"));
        assert_eq!(boundary("multipart/related; boundary=\"B\"").as_deref(), Some("B"));
        assert_eq!(boundary("multipart/form-data; boundary=B"), None);
        let parts = parse(&body, "B").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].header("Content-Type"), Some("application/json"));
        assert_eq!(&parts[0].body[..], b"{\"name\":\"a b\"}");
        assert_eq!(&parts[1].body[..], b"hello world");
    }

    #[test]
    fn zero_byte_media_and_garbage() {
        let body = Bytes::from_static(
            b"--B\r\ncontent-type: application/json\r\n\r\n{}\r\n--B\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n\r\n--B--",
        );
        let parts = parse(&body, "B").unwrap();
        assert_eq!(parts[1].body.len(), 0);
        assert!(parse(&Bytes::from_static(b"no delimiter"), "B").is_none());
        assert!(parse(&Bytes::from_static(b"--B\r\nx: y\r\n\r\nunterminated"), "B").is_none());
    }
}
