//! Reading and stamping the `PacketWrapper` header without decoding `data`.
//!
//! The relay must know a packet's type, its addressee and a media packet's routing header
//! (stream, simulcast layer, keyframe, frame counter), and must overwrite the
//! sender identity with the one from the verified token. It does that on the protobuf wire
//! format directly: the payload bytes are copied once, never parsed or re-encoded.

use bytes::{BufMut, Bytes, BytesMut};
use protobuf::EnumOrUnknown;
use videocall_types::{PacketType, Route, UserId};

use crate::SessionId;

// Field numbers of `PacketWrapper` (videocall-types/proto/videocall.proto).
const FIELD_PACKET_TYPE: u32 = 1;
const FIELD_EMAIL: u32 = 2;
const FIELD_SESSION_ID: u32 = 4;
const FIELD_TO_SESSION_ID: u32 = 5;
const FIELD_KEYFRAME: u32 = 6;
const FIELD_STREAM: u32 = 7;
const FIELD_LAYER: u32 = 8;
const FIELD_LAYERS: u32 = 9;
const FIELD_FRAME: u32 = 10;

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// Why a packet's header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("malformed PacketWrapper: truncated at byte {0}")]
    Truncated(usize),
    #[error("malformed PacketWrapper: varint longer than 10 bytes at byte {0}")]
    VarintTooLong(usize),
    #[error("malformed PacketWrapper: field number 0 at byte {0}")]
    FieldZero(usize),
    #[error("malformed PacketWrapper: wire type {wire_type} (field {field}) is not allowed")]
    BadWireType { field: u32, wire_type: u8 },
    #[error("PacketWrapper has no packet_type")]
    MissingPacketType,
    #[error("unknown packet type {0}")]
    UnknownPacketType(u64),
}

/// What the relay reads from a packet's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub packet_type: PacketType,
    /// `Some` when the packet is addressed to one session only.
    pub to_session: Option<SessionId>,
    /// A media packet's routing header: stream, layer, keyframe (the drop hint), frame counter.
    pub route: Route,
    /// The stamped sender session (0 before stamping).
    pub session_id: u64,
}

struct Field {
    number: u32,
    wire_type: u8,
    /// The value of a varint field.
    varint: u64,
    /// Byte range of the whole field (tag included).
    start: usize,
    end: usize,
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let start = *pos;
    let mut value = 0u64;
    for shift in 0..10 {
        let byte = *buf.get(*pos).ok_or(WireError::Truncated(*pos))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::VarintTooLong(start))
}

fn advance(buf: &[u8], pos: &mut usize, len: u64) -> Result<(), WireError> {
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| pos.checked_add(len))
        .filter(|end| *end <= buf.len())
        .ok_or(WireError::Truncated(buf.len()))?;
    *pos = end;
    Ok(())
}

fn fields(buf: &[u8]) -> impl Iterator<Item = Result<Field, WireError>> + '_ {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= buf.len() {
            return None;
        }
        let result = (|| {
            let start = pos;
            let tag = read_varint(buf, &mut pos)?;
            let number = u32::try_from(tag >> 3).map_err(|_| WireError::FieldZero(start))?;
            let wire_type = (tag & 7) as u8;
            if number == 0 {
                return Err(WireError::FieldZero(start));
            }
            let mut varint = 0;
            match wire_type {
                WIRE_VARINT => varint = read_varint(buf, &mut pos)?,
                WIRE_I64 => advance(buf, &mut pos, 8)?,
                WIRE_I32 => advance(buf, &mut pos, 4)?,
                WIRE_LEN => {
                    let len = read_varint(buf, &mut pos)?;
                    advance(buf, &mut pos, len)?;
                }
                _ => return Err(WireError::BadWireType { field: number, wire_type }),
            }
            Ok(Field { number, wire_type, varint, start, end: pos })
        })();
        failed = result.is_err();
        Some(result)
    })
}

fn expect_wire_type(field: &Field, wire_type: u8) -> Result<(), WireError> {
    if field.wire_type == wire_type {
        Ok(())
    } else {
        Err(WireError::BadWireType { field: field.number, wire_type: field.wire_type })
    }
}

fn packet_type(value: u64) -> Result<PacketType, WireError> {
    i32::try_from(value)
        .ok()
        .and_then(|v| protobuf::Enum::from_i32(v))
        .filter(|t| *t != PacketType::PACKET_TYPE_UNKNOWN)
        .ok_or(WireError::UnknownPacketType(value))
}

/// Reads the header of an encoded `PacketWrapper`, validating the whole top-level structure.
pub fn scan(buf: &[u8]) -> Result<Header, WireError> {
    scan_with(buf, |_| ())
}

fn scan_with(buf: &[u8], mut each: impl FnMut(&Field)) -> Result<Header, WireError> {
    let mut packet_type_raw = None;
    let mut header = Header {
        packet_type: PacketType::PACKET_TYPE_UNKNOWN,
        to_session: None,
        route: Route::default(),
        session_id: 0,
    };
    for field in fields(buf) {
        let field = field?;
        match field.number {
            FIELD_PACKET_TYPE => {
                expect_wire_type(&field, WIRE_VARINT)?;
                packet_type_raw = Some(field.varint);
            }
            FIELD_EMAIL => expect_wire_type(&field, WIRE_LEN)?,
            FIELD_SESSION_ID => {
                expect_wire_type(&field, WIRE_VARINT)?;
                header.session_id = field.varint;
            }
            FIELD_TO_SESSION_ID => {
                expect_wire_type(&field, WIRE_VARINT)?;
                header.to_session = SessionId::new(field.varint);
            }
            FIELD_KEYFRAME => {
                expect_wire_type(&field, WIRE_VARINT)?;
                header.route.keyframe = field.varint != 0;
            }
            // Out-of-range values are kept as sent (as protobuf reads them): the frame's
            // associated data binds them, so only the sender's own values open.
            FIELD_STREAM => {
                expect_wire_type(&field, WIRE_VARINT)?;
                header.route.stream = EnumOrUnknown::from_i32(field.varint as i32);
            }
            FIELD_LAYER => {
                expect_wire_type(&field, WIRE_VARINT)?;
                header.route.layer = field.varint as u32;
            }
            FIELD_LAYERS => {
                expect_wire_type(&field, WIRE_VARINT)?;
                header.route.layers = field.varint as u32;
            }
            FIELD_FRAME => {
                expect_wire_type(&field, WIRE_VARINT)?;
                header.route.frame = field.varint;
            }
            _ => {}
        }
        each(&field);
    }
    header.packet_type = packet_type(packet_type_raw.ok_or(WireError::MissingPacketType)?)?;
    Ok(header)
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn put_tag(out: &mut BytesMut, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// Validates a client's packet and rewrites its sender identity: `email` becomes `user` and
/// `session_id` becomes `session`, whatever the client put there. Every other field, unknown
/// ones included, is kept byte for byte and in order.
pub fn stamp(buf: &[u8], user: &UserId, session: SessionId) -> Result<(Bytes, Header), WireError> {
    let mut kept = Vec::with_capacity(4);
    let mut header = scan_with(buf, |field| {
        if field.number != FIELD_EMAIL && field.number != FIELD_SESSION_ID {
            kept.push((field.start, field.end));
        }
    })?;
    let email = user.as_str().as_bytes();
    let mut out = BytesMut::with_capacity(buf.len() + email.len() + 16);
    put_tag(&mut out, FIELD_EMAIL, WIRE_LEN);
    put_varint(&mut out, email.len() as u64);
    out.put_slice(email);
    put_tag(&mut out, FIELD_SESSION_ID, WIRE_VARINT);
    put_varint(&mut out, session.get());
    // Adjacent kept fields are copied as one range.
    let mut ranges = kept.into_iter().peekable();
    while let Some((start, mut end)) = ranges.next() {
        while let Some(&(next_start, next_end)) = ranges.peek() {
            if next_start != end {
                break;
            }
            end = next_end;
            ranges.next();
        }
        out.put_slice(&buf[start..end]);
    }
    header.session_id = session.get();
    Ok((out.freeze(), header))
}

#[cfg(test)]
mod tests {
    use protobuf::{Message, UnknownFields};
    use videocall_types::PacketWrapper;

    use super::*;

    fn packet(t: PacketType, email: &str, session: u64, data: &[u8]) -> PacketWrapper {
        PacketWrapper {
            packet_type: t.into(),
            email: email.into(),
            session_id: session,
            data: data.to_vec(),
            ..Default::default()
        }
    }

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn sid(n: u64) -> SessionId {
        SessionId::new(n).unwrap()
    }

    #[test]
    fn stamp_overwrites_identity_and_keeps_everything_else() {
        let mut sent = packet(PacketType::MEDIA, "mallory@evil", 7, b"ciphertext");
        sent.to_session_id = 99;
        let route = Route::video(videocall_types::MediaStream::STREAM_SCREEN, 1, 2, true, 77);
        route.apply(&mut sent);
        let mut unknown = UnknownFields::new();
        unknown.add_length_delimited(42, b"future".to_vec());
        *sent.mut_unknown_fields() = unknown;
        let bytes = sent.write_to_bytes().unwrap();

        let (stamped, header) = stamp(&bytes, &user("alice@example.org"), sid(1234)).unwrap();
        let got = PacketWrapper::parse_from_bytes(&stamped).unwrap();
        assert_eq!(got.email, "alice@example.org");
        assert_eq!(got.session_id, 1234);
        assert_eq!(got.data, b"ciphertext");
        assert_eq!(got.to_session_id, 99);
        assert_eq!(Route::of(&got), route);
        assert_eq!(got.unknown_fields().get(42), Some(protobuf::UnknownValueRef::LengthDelimited(b"future")));
        assert_eq!(
            header,
            Header { packet_type: PacketType::MEDIA, to_session: Some(sid(99)), route, session_id: 1234 }
        );
        assert_eq!(scan(&stamped).unwrap(), header);
    }

    #[test]
    fn repeated_identity_fields_are_all_removed() {
        let mut bytes = packet(PacketType::MEDIA, "a@x", 1, b"d").write_to_bytes().unwrap();
        bytes.extend(packet(PacketType::MEDIA, "b@x", 2, b"").write_to_bytes().unwrap());
        let (stamped, _) = stamp(&bytes, &user("c@x"), sid(3)).unwrap();
        assert!(!stamped.windows(3).any(|w| w == b"a@x" || w == b"b@x"));
        let got = PacketWrapper::parse_from_bytes(&stamped).unwrap();
        assert_eq!((got.email.as_str(), got.session_id), ("c@x", 3));
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let unknown_type = packet(PacketType::MEDIA, "", 0, b"")
            .write_to_bytes()
            .map(|mut b| {
                b[1] = 42;
                b
            })
            .unwrap();
        assert_eq!(scan(&unknown_type), Err(WireError::UnknownPacketType(42)));
        assert_eq!(scan(&[]), Err(WireError::MissingPacketType));
        assert_eq!(scan(&[0x08, 0x00]), Err(WireError::UnknownPacketType(0)));
        assert_eq!(scan(&[0x08]), Err(WireError::Truncated(1)));
        assert_eq!(scan(&[0x1a, 0x05, 1, 2]), Err(WireError::Truncated(4)));
        assert_eq!(scan(&[0x00, 0x01]), Err(WireError::FieldZero(0)));
        assert_eq!(scan(&[0x0b]), Err(WireError::BadWireType { field: 1, wire_type: 3 }));
        assert_eq!(scan(&[0x0a, 0x00]), Err(WireError::BadWireType { field: 1, wire_type: 2 }));
        assert_eq!(
            scan(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(WireError::VarintTooLong(1))
        );
        assert_eq!(scan(&[0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Err(WireError::Truncated(6)));
        // Every prefix and every single-byte corruption of a valid packet: no panic.
        let valid = packet(PacketType::AES_KEY, "a@b", 5, &[7; 40]).write_to_bytes().unwrap();
        for cut in 0..valid.len() {
            let _ = stamp(&valid[..cut], &user("x"), sid(1));
        }
        for i in 0..valid.len() {
            for byte in [0x00, 0x7f, 0x80, 0xff] {
                let mut bad = valid.clone();
                bad[i] = byte;
                let _ = stamp(&bad, &user("x"), sid(1));
            }
        }
    }
}
