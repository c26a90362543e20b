//! The rootless ownership record: the `user.rootlesscontainers` extended attribute.
//!
//! An unprivileged unpack cannot `chown`, so the owner the layer asked for is kept in this
//! xattr, in the format umoci and the rootless-containers project define: the protobuf
//! message `Resource { uint32 uid = 1; uint32 gid = 2; }`, where `0xFFFFFFFF` (NoopID) means
//! "no change from the file's owner as seen in the container", i.e. 0. The record is only
//! written when the owner is not 0:0, exactly like umoci, so that images unpacked by either
//! tool repack the same way. This module only encodes and decodes; it does no I/O.

/// The xattr name.
pub const ROOTLESS_XATTR: &str = "user.rootlesscontainers";

/// "Leave this id alone" in the protobuf record (uint32(-1)).
const NOOP_ID: u32 = u32::MAX;

/// The in-container owner of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootlessOwner {
    pub uid: u32,
    pub gid: u32,
}

impl RootlessOwner {
    /// The xattr value for this owner, or `None` for 0:0 (no record is written then).
    pub fn encode(self) -> Option<Vec<u8>> {
        if self.uid == 0 && self.gid == 0 {
            return None;
        }
        // 0 is stored as NoopID, as umoci does; the file's apparent owner is 0 anyway.
        let uid = if self.uid == 0 { NOOP_ID } else { self.uid };
        let gid = if self.gid == 0 { NOOP_ID } else { self.gid };
        let mut out = Vec::with_capacity(12);
        // proto3 omits fields equal to 0; neither can be 0 here, so both are present.
        out.push(1 << 3); // field 1, wire type 0 (varint)
        put_varint(&mut out, u64::from(uid));
        out.push(2 << 3); // field 2, wire type 0
        put_varint(&mut out, u64::from(gid));
        Some(out)
    }

    /// Decodes a record. Missing fields are 0 (proto3 defaults); NoopID means 0 as well,
    /// since the file's own owner in a rootless tree stands for root. Unknown fields are
    /// skipped, as protobuf requires.
    pub fn decode(mut bytes: &[u8]) -> Option<RootlessOwner> {
        let mut owner = RootlessOwner { uid: 0, gid: 0 };
        while !bytes.is_empty() {
            let key = take_varint(&mut bytes)?;
            let (field, wire_type) = (key >> 3, key & 7);
            match wire_type {
                0 => {
                    let value = take_varint(&mut bytes)?;
                    // uint32 fields: protobuf truncates wider varints to 32 bits.
                    let id = match value as u32 {
                        NOOP_ID => 0,
                        id => id,
                    };
                    match field {
                        1 => owner.uid = id,
                        2 => owner.gid = id,
                        _ => {}
                    }
                }
                1 => bytes = bytes.get(8..)?,
                2 => {
                    let len = usize::try_from(take_varint(&mut bytes)?).ok()?;
                    bytes = bytes.get(len..)?;
                }
                5 => bytes = bytes.get(4..)?,
                _ => return None,
            }
        }
        Some(owner)
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_owner_writes_no_record() {
        assert_eq!(RootlessOwner { uid: 0, gid: 0 }.encode(), None);
    }

    #[test]
    fn record_matches_umoci_bytes() {
        // umoci (Go protobuf) for uid 1000, gid 0: 08 e8 07 10 ff ff ff ff 0f
        let bytes = RootlessOwner { uid: 1000, gid: 0 }.encode().unwrap();
        assert_eq!(
            bytes,
            [0x08, 0xe8, 0x07, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f]
        );
        assert_eq!(
            RootlessOwner::decode(&bytes),
            Some(RootlessOwner { uid: 1000, gid: 0 })
        );
    }

    #[test]
    fn decode_handles_missing_and_unknown_fields_and_rejects_garbage() {
        assert_eq!(
            RootlessOwner::decode(&[0x10, 0x05]),
            Some(RootlessOwner { uid: 0, gid: 5 })
        );
        // unknown length-delimited field 3 is skipped
        assert_eq!(
            RootlessOwner::decode(&[0x1a, 0x01, 0x00, 0x08, 0x07]),
            Some(RootlessOwner { uid: 7, gid: 0 })
        );
        assert_eq!(RootlessOwner::decode(&[0x08]), None);
        assert_eq!(RootlessOwner::decode(&[0x0f]), None);
    }
}
