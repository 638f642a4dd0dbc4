//! A borrowing protobuf wire reader: fields as slices of the request body, so
//! receiving a batch allocates nothing per string (prost's owned decode was a
//! third of the gateway's CPU).

/// One field's payload.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    /// A (deprecated) group, skipped whole.
    Group,
}

impl Wire<'_> {
    fn name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "a varint",
            Wire::Fixed64(_) => "a fixed64",
            Wire::Fixed32(_) => "a fixed32",
            Wire::Bytes(_) => "length-delimited",
            Wire::Group => "a group",
        }
    }
}

/// Nesting deeper than this is refused, as prost does.
pub(crate) const MAX_DEPTH: u32 = 100;

/// What is wrong with the bytes, and where (offset in the whole body).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireError(pub String);

/// Fields of one message, in order.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole body, for error messages.
    base: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Fields { buf, pos: 0, base }
    }

    #[cold]
    #[inline(never)]
    fn err(&self, what: &str) -> WireError {
        WireError(format!("{what} at byte {}", self.base + self.pos))
    }

    /// The body offset of the next unread byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Tags and most lengths fit one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("field runs past the end of its message"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn skip_group(&mut self, number: u32, depth: u32) -> Result<(), WireError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("groups nested too deep"));
        }
        loop {
            let tag = self.varint()?;
            let (n, ty) = split_tag(tag).ok_or_else(|| self.err("invalid field tag"))?;
            match ty {
                4 if n == number => return Ok(()),
                4 => return Err(self.err("unmatched end of group")),
                3 => self.skip_group(n, depth + 1)?,
                _ => {
                    self.payload(ty)?;
                }
            }
        }
    }

    #[inline(always)]
    fn payload(&mut self, ty: u8) -> Result<Wire<'a>, WireError> {
        Ok(match ty {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or([0; 8]))),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| self.err("length too large"))?;
                Wire::Bytes(self.take(len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or([0; 4]))),
            _ => return Err(self.err("invalid wire type")),
        })
    }

    /// The payload of the next field and its body offset, when that field is
    /// length-delimited with tag byte `tag` and a one-byte length; `None`, and
    /// nothing read, for anything else. Reads what [`Fields::next_field`] would.
    #[inline(always)]
    pub(crate) fn next_short_bytes(&mut self, tag: u8) -> Option<(&'a [u8], usize)> {
        let (payload, _) = short_field(self.buf.get(self.pos..)?, tag)?;
        let at = self.base + self.pos + 2;
        self.pos += 2 + payload.len();
        Some((payload, at))
    }

    /// The next field: its number, its payload and the body offset of the payload.
    #[inline(always)]
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>, usize)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let (number, ty) = split_tag(tag).ok_or_else(|| self.err("invalid field tag"))?;
        let at = self.offset();
        let wire = match ty {
            3 => {
                self.skip_group(number, 0)?;
                Wire::Group
            }
            4 => return Err(self.err("unexpected end of group")),
            _ => self.payload(ty)?,
        };
        // A length-delimited payload starts after its length prefix.
        let at = match wire {
            Wire::Bytes(b) => self.offset() - b.len(),
            _ => at,
        };
        Ok(Some((number, wire, at)))
    }
}

#[inline(always)]
fn split_tag(tag: u64) -> Option<(u32, u8)> {
    let number = u32::try_from(tag >> 3).ok().filter(|&n| n > 0 && n < (1 << 29))?;
    Some((number, (tag & 7) as u8))
}

/// The payload as the type the schema declares, or an error naming the field.
#[inline(always)]
pub(crate) fn bytes<'a>(w: Wire<'a>, field: &str, at: usize) -> Result<&'a [u8], WireError> {
    match w {
        Wire::Bytes(b) => Ok(b),
        other => Err(mismatch(field, "length-delimited", other, at)),
    }
}

#[inline(always)]
pub(crate) fn string<'a>(w: Wire<'a>, field: &str, at: usize) -> Result<&'a str, WireError> {
    utf8(bytes(w, field, at)?).ok_or_else(|| WireError(format!("{field}: invalid UTF-8 at byte {at}")))
}

/// A length-delimited field with tag byte `tag` and a one-byte length at the start
/// of `buf`: its payload and what follows it; `None` for anything else.
#[inline(always)]
pub(crate) fn short_field(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match buf {
        [t, len, rest @ ..] if *t == tag && *len < 0x80 && usize::from(*len) <= rest.len() => {
            Some(rest.split_at(usize::from(*len)))
        }
        _ => None,
    }
}

/// UTF-8 validation, short ASCII strings inline (see [`usage_core::receive::utf8`]).
pub(crate) use usage_core::receive::utf8;

#[inline(always)]
pub(crate) fn varint(w: Wire<'_>, field: &str, at: usize) -> Result<u64, WireError> {
    match w {
        Wire::Varint(v) => Ok(v),
        other => Err(mismatch(field, "a varint", other, at)),
    }
}

#[inline(always)]
pub(crate) fn fixed64(w: Wire<'_>, field: &str, at: usize) -> Result<u64, WireError> {
    match w {
        Wire::Fixed64(v) => Ok(v),
        other => Err(mismatch(field, "a fixed64", other, at)),
    }
}

#[inline(always)]
pub(crate) fn fixed32(w: Wire<'_>, field: &str, at: usize) -> Result<u32, WireError> {
    match w {
        Wire::Fixed32(v) => Ok(v),
        other => Err(mismatch(field, "a fixed32", other, at)),
    }
}

#[cold]
#[inline(never)]
fn mismatch(field: &str, want: &str, got: Wire<'_>, at: usize) -> WireError {
    WireError(format!("{field}: expected {want}, got {} at byte {at}", got.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> Result<Vec<(u32, String)>, WireError> {
        let mut f = Fields::new(buf, 0);
        let mut out = Vec::new();
        while let Some((n, w, _)) = f.next_field()? {
            out.push((n, format!("{w:?}")));
        }
        Ok(out)
    }

    #[test]
    fn reads_each_wire_type() {
        // 1: varint 300, 2: "hi", 3: fixed64 1, 4: fixed32 2, 5: group holding 1: varint 7
        let buf = [
            0x08, 0xac, 0x02, 0x12, 2, b'h', b'i', 0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x25, 2, 0, 0, 0, 0x2b, 0x08, 7, 0x2c,
        ];
        let got = all(&buf).unwrap();
        assert_eq!(
            got,
            vec![
                (1, "Varint(300)".to_string()),
                (2, "Bytes([104, 105])".to_string()),
                (3, "Fixed64(1)".to_string()),
                (4, "Fixed32(2)".to_string()),
                (5, "Group".to_string()),
            ]
        );
    }

    #[test]
    fn short_bytes_are_what_the_general_read_makes_of_them() {
        // Field 6 "ab" at offset 3, after a varint; then field 6 with a two-byte
        // length, field 7, and field 6 running past the end: left to `next_field`.
        let mut buf = vec![0x08, 0x01, 0x32, 2, b'a', b'b', 0x32, 0x80, 0x01];
        buf.extend(std::iter::repeat_n(b'x', 128));
        buf.extend([0x3a, 1, b'c', 0x32, 5, b'd']);
        let mut short = Fields::new(&buf, 10);
        let mut general = Fields::new(&buf, 10);
        let mut taken = Vec::new();
        loop {
            if let Some((b, at)) = short.next_short_bytes(0x32) {
                let (n, w, g_at) = general.next_field().unwrap().unwrap();
                assert_eq!((n, format!("{w:?}"), g_at), (6, format!("{:?}", Wire::Bytes(b)), at));
                taken.push(at);
                continue;
            }
            match (short.next_field(), general.next_field()) {
                (Ok(None), Ok(None)) => break,
                (Ok(Some(a)), Ok(Some(b))) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
                (Err(a), Err(b)) => {
                    assert_eq!(a, b);
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(taken, [14]);
    }

    #[test]
    fn malformed_input_is_an_error_naming_the_offset() {
        for (buf, want) in [
            (&[0x08, 0x80][..], "truncated varint at byte 2"),
            (&[0x12, 5, b'a'][..], "past the end of its message at byte 2"),
            (&[0x0e][..], "invalid wire type"),
            (&[0x00][..], "invalid field tag"),
            (&[0x0c][..], "unexpected end of group"),
            (&[0x2b, 0x08][..], "truncated varint"),
            (
                &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02][..],
                "overflows 64 bits",
            ),
        ] {
            let e = all(buf).unwrap_err();
            assert!(e.0.contains(want), "{buf:?}: {e:?}");
        }
    }

    #[test]
    fn typed_accessors_name_the_field_on_mismatch() {
        let e = string(Wire::Varint(1), "LogRecord.severity_text", 7).unwrap_err();
        assert_eq!(
            e.0,
            "LogRecord.severity_text: expected length-delimited, got a varint at byte 7"
        );
        let e = string(Wire::Bytes(&[0xff]), "KeyValue.key", 3).unwrap_err();
        assert_eq!(e.0, "KeyValue.key: invalid UTF-8 at byte 3");
        assert_eq!(fixed64(Wire::Fixed64(9), "x", 0).unwrap(), 9);
    }
}
