//! How placeholder values are written into URLs, so that a value can never change the
//! request target: in a path it is one segment, in a query one form value.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Everything that could end, split or escape a path segment: `/`, `\` (a separator in
/// http URLs), `?`, `#`, `%`, `;` (servlet containers read `..;` as `..`), plus what the URL
/// standard encodes in paths. Non-ASCII is always encoded.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'%')
    .add(b';')
    .add(b'|')
    .add(b'^')
    .add(b'[')
    .add(b']');

/// What must be encoded in a user name or password: a segment's set, and what ends them.
const USERINFO: &AsciiSet = &SEGMENT.add(b':').add(b'=').add(b'@');

/// `value` as (part of) one path segment.
pub fn encode_segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// `value` as a user name or password of a URL's authority.
pub fn encode_userinfo(value: &str) -> String {
    utf8_percent_encode(value, USERINFO).to_string()
}

/// `value` as one `application/x-www-form-urlencoded` value (space as `+`).
pub fn encode_query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_inside_their_segment_or_query_value() {
        assert_eq!(encode_segment("a#frag"), "a%23frag");
        assert_eq!(encode_segment("../x?y=1"), "..%2Fx%3Fy=1");
        assert_eq!(encode_segment("50% off\\"), "50%25%20off%5C");
        assert_eq!(encode_query_value("a&b=c d"), "a%26b%3Dc+d");
        assert_eq!(encode_userinfo("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
